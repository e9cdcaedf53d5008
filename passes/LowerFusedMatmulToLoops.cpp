//===- LowerFusedMatmulToLoops.cpp - CPU lowering of fused matmul -*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "qforge/Codegen/CPUKernels.h"
#include "qforge/Codegen/FusedMatmulKernel.h"

namespace qforge {
#define GEN_PASS_DEF_LOWERFUSEDMATMULTOLOOPSPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;
using namespace qforge;

namespace {
struct LowerFusedMatmulToLoopsPass
    : public qforge::impl::LowerFusedMatmulToLoopsPassBase<
          LowerFusedMatmulToLoopsPass> {
  using Base::Base;

  void runOnOperation() override {
    FailureOr<SmallVector<qf::FusedMatmulOp>> ops =
        codegen::collectBufferizedFusedMatmuls(getOperation(), "loops");
    if (failed(ops))
      return signalPassFailure();
    OpBuilder b(&getContext());
    for (qf::FusedMatmulOp op : *ops) {
      codegen::FusedMatmulBuffers buf = codegen::getFlattenedBuffers(b, op);
      Location loc = op.getLoc();
      if (vectorize && codegen::canVectorizeFusedMatmul(buf)) {
        codegen::CPUKernelOptions options;
        options.vectorWidth = vectorWidth;
        options.gemvMaxRows = gemvMaxRows;
        options.int8Activations = int8Activations;
        options.parallelMinWeights = parallelMinWeights;
        codegen::emitVectorFusedMatmul(b, loc, buf, options);
        op.erase();
        continue;
      }
      Value zero = arith::ConstantIndexOp::create(b, loc, 0);
      Value one = arith::ConstantIndexOp::create(b, loc, 1);
      Value m = memref::DimOp::create(b, loc, buf.x, 0);
      Value n = arith::ConstantIndexOp::create(b, loc, buf.rows);
      scf::ParallelOp::create(
          b, loc, ValueRange{zero, zero}, ValueRange{m, n},
          ValueRange{one, one}, [&](OpBuilder &pb, Location pl, ValueRange iv) {
            codegen::emitOutputElement(pb, pl, buf, iv[0], iv[1]);
          });
      op.erase();
    }
  }
};
} // namespace
