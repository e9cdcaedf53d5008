//===- EmulateWarpGemv.cpp - The CUDA warp GEMV's arithmetic on a CPU -*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// Lowers each fused matmul the CUDA target gives to the warp GEMV into CPU
// loops that run the kernel's own per-lane code (the same generator) for the
// 32 lanes in turn, then the same butterfly over the lane values as a vector:
// the module computes what the GPU kernel computes, f16 rounding included.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "qforge/Codegen/WarpGemvKernel.h"

namespace qforge {
#define GEN_PASS_DEF_EMULATEWARPGEMVPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;
using namespace qforge;

namespace {
struct EmulateWarpGemvPass
    : public qforge::impl::EmulateWarpGemvPassBase<EmulateWarpGemvPass> {
  void runOnOperation() override {
    SmallVector<qf::FusedMatmulOp> ops;
    getOperation().walk([&](qf::FusedMatmulOp op) { ops.push_back(op); });
    OpBuilder b(&getContext());
    for (qf::FusedMatmulOp op : ops) {
      if (op.getResult()) {
        op.emitOpError("must be bufferized before lowering to loops");
        return signalPassFailure();
      }
      codegen::FusedMatmulBuffers buf = codegen::getFlattenedBuffers(b, op);
      if (!codegen::canUseWarpGemv(buf))
        continue;
      emit(b, op.getLoc(), buf);
      op.erase();
    }
  }

  static void emit(OpBuilder &b, Location loc,
                   const codegen::FusedMatmulBuffers &buf) {
    auto c = [&](OpBuilder &cb, int64_t v) {
      return arith::ConstantIndexOp::create(cb, loc, v);
    };
    int64_t lanes = codegen::kWarpLanes;
    Value rowsM = memref::DimOp::create(b, loc, buf.x, 0);
    scf::ParallelOp::create(
        b, loc, ValueRange{c(b, 0)}, ValueRange{rowsM}, ValueRange{c(b, 1)},
        [&](OpBuilder &pb, Location, ValueRange iv) {
          Value m = iv[0];
          Value xs = memref::AllocOp::create(
              pb, loc, codegen::stagedXType(buf, Attribute()));
          auto partsType = MemRefType::get({lanes}, pb.getF32Type());
          Value parts = memref::AllocOp::create(pb, loc, partsType);
          // One "thread" stages all of x.
          codegen::emitStageX(pb, loc, buf, m, xs, c(pb, 0), c(pb, 1));
          codegen::WarpGemvTarget target;
          target.maskOr = [](OpBuilder &ab, Location al, Value word,
                             uint32_t mask) -> Value {
            auto i32 = [&](int64_t v) {
              return arith::ConstantIntOp::create(ab, al, ab.getI32Type(), v);
            };
            Value masked = arith::AndIOp::create(ab, al, word, i32(mask));
            return arith::OrIOp::create(ab, al, masked, i32(0x64006400));
          };
          scf::ForOp::create(
              pb, loc, c(pb, 0), c(pb, buf.rows), c(pb, 1), ValueRange{},
              [&](OpBuilder &nb, Location, Value n, ValueRange) {
                scf::ForOp::create(
                    nb, loc, c(nb, 0), c(nb, lanes), c(nb, 1), ValueRange{},
                    [&](OpBuilder &lb, Location, Value lane, ValueRange) {
                      Value part = codegen::emitLanePartial(
                          lb, loc, buf, target, xs, n, lane);
                      memref::StoreOp::create(lb, loc, part, parts,
                                              ValueRange{lane});
                      scf::YieldOp::create(lb, loc);
                    });
                // Lane l of the vector is lane l of the warp; the exchange is
                // the shuffle l -> l ^ offset.
                Value v = vector::LoadOp::create(
                    nb, loc, VectorType::get({lanes}, nb.getF32Type()), parts,
                    ValueRange{c(nb, 0)});
                Value total = codegen::emitButterfly(
                    nb, loc, v, [&](Value x, int32_t offset) -> Value {
                      SmallVector<int64_t> mask;
                      for (int64_t l = 0; l < lanes; ++l)
                        mask.push_back(l ^ offset);
                      return vector::ShuffleOp::create(nb, loc, x, x, mask);
                    });
                Value first = vector::ExtractOp::create(nb, loc, total, 0);
                codegen::emitStoreOutput(nb, loc, buf, m, n, first);
                scf::YieldOp::create(nb, loc);
              });
          memref::DeallocOp::create(pb, loc, xs);
          memref::DeallocOp::create(pb, loc, parts);
          scf::ReduceOp::create(pb, loc);
        });
  }
};
} // namespace
