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
    FailureOr<SmallVector<qf::FusedMatmulOp>> ops =
        codegen::collectBufferizedFusedMatmuls(getOperation(), "loops");
    if (failed(ops))
      return signalPassFailure();
    OpBuilder b(&getContext());
    for (qf::FusedMatmulOp op : *ops) {
      // Decided from the op's types: the others are left untouched for
      // qf-lower-fused-matmul-to-loops.
      if (!codegen::canUseWarpGemv(op))
        continue;
      emit(b, op.getLoc(), codegen::getFlattenedBuffers(b, op));
      op.erase();
    }
  }

  static void emit(OpBuilder &b, Location loc,
                   const codegen::FusedMatmulBuffers &buf) {
    auto c = [&](OpBuilder &cb, int64_t v) {
      return arith::ConstantIndexOp::create(cb, loc, v);
    };
    int64_t lanes = codegen::kWarpLanes;
    codegen::WarpGemvTarget target;
    target.maskOr = [](OpBuilder &ab, Location al, Value word,
                       uint32_t mask) -> Value {
      auto i32 = [&](int64_t v) {
        return arith::ConstantIntOp::create(ab, al, ab.getI32Type(), v);
      };
      Value masked = arith::AndIOp::create(ab, al, word, i32(mask));
      return arith::OrIOp::create(ab, al, masked, i32(0x64006400));
    };
    // The kernel's blocks (tiles of rows) in parallel; its warps (output
    // channels) and lanes in turn.
    codegen::emitForTileRows(
        b, loc, buf, codegen::warpGemvTileRows(buf),
        [&](OpBuilder &tb, int64_t rows) {
          Value rowsM = memref::DimOp::create(tb, loc, buf.x, 0);
          Value tiles = arith::CeilDivUIOp::create(tb, loc, rowsM, c(tb, rows));
          scf::ParallelOp::create(
              tb, loc, ValueRange{c(tb, 0)}, ValueRange{tiles},
              ValueRange{c(tb, 1)},
              [&](OpBuilder &pb, Location, ValueRange iv) {
                Value m0 = arith::MulIOp::create(pb, loc, iv[0], c(pb, rows));
                bool stagesX = codegen::warpGemvStagesX(buf);
                Value xs;
                if (stagesX)
                  xs = memref::AllocOp::create(
                      pb, loc, codegen::stagedXType(buf, rows, Attribute()));
                auto partsType =
                    MemRefType::get({rows, lanes}, pb.getF32Type());
                Value parts = memref::AllocOp::create(pb, loc, partsType);
                // One "thread" stages the tile.
                if (stagesX)
                  codegen::emitStageX(pb, loc, buf, m0, rows, xs, c(pb, 0),
                                      c(pb, 1));
                scf::ForOp::create(
                    pb, loc, c(pb, 0), c(pb, buf.rows), c(pb, 1), ValueRange{},
                    [&](OpBuilder &nb, Location, Value n, ValueRange) {
                      emitChannel(nb, loc, buf, target, xs, parts, rows, m0, n);
                      scf::YieldOp::create(nb, loc);
                    });
                if (stagesX)
                  memref::DeallocOp::create(pb, loc, xs);
                memref::DeallocOp::create(pb, loc, parts);
                scf::ReduceOp::create(pb, loc);
              });
        });
  }

  /// One warp's work: lanes 0..31 in turn, then the butterfly per row with
  /// lane l of a vector standing for lane l of the warp.
  static void emitChannel(OpBuilder &b, Location loc,
                          const codegen::FusedMatmulBuffers &buf,
                          const codegen::WarpGemvTarget &target, Value xs,
                          Value parts, int64_t rows, Value m0, Value n) {
    int64_t lanes = codegen::kWarpLanes;
    auto c = [&](OpBuilder &cb, int64_t v) {
      return arith::ConstantIndexOp::create(cb, loc, v);
    };
    scf::ForOp::create(b, loc, c(b, 0), c(b, lanes), c(b, 1), ValueRange{},
                       [&](OpBuilder &lb, Location, Value lane, ValueRange) {
                         for (auto [r, part] :
                              llvm::enumerate(codegen::emitLanePartials(
                                  lb, loc, buf, target, xs, m0, rows, n, lane)))
                           memref::StoreOp::create(lb, loc, part, parts,
                                                   ValueRange{c(lb, r), lane});
                         scf::YieldOp::create(lb, loc);
                       });
    SmallVector<Value> totals;
    for (int64_t r = 0; r < rows; ++r) {
      Value v = vector::LoadOp::create(b, loc,
                                       VectorType::get({lanes}, b.getF32Type()),
                                       parts, ValueRange{c(b, r), c(b, 0)});
      Value total =
          codegen::emitButterfly(b, loc, v, [&](Value x, int32_t offset) {
            return codegen::emitLaneVectorShuffleXor(b, loc, x, offset);
          });
      totals.push_back(vector::ExtractOp::create(b, loc, total, 0));
    }
    codegen::emitStoreRows(b, loc, buf, m0, n, totals);
  }
};
} // namespace
