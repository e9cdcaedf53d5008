//===- FuseElementwise.cpp - Fuse elementwise chains, keep named ops ------===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// qf-fuse-elementwise: the upstream elementwise-fusion patterns
// (linalg::populateElementwiseOpsFusionPatterns), restricted to a
// linalg.generic producer with a single use fused into a linalg.generic
// consumer. Upstream's linalg-fuse-elementwise-ops also propagates reshapes by
// expansion, which turns attention's linalg.batch_matmul into a generic
// contraction and takes it away from the GEMM kernel of
// qf-lower-float-matmul (the T = 256 forward of the bundled llama went from 34
// to 66 ms); named ops stay named here.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace qforge {
#define GEN_PASS_DEF_FUSEELEMENTWISEPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;

namespace {
struct FuseElementwisePass
    : public qforge::impl::FuseElementwisePassBase<FuseElementwisePass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    linalg::ControlFusionFn control = [](OpOperand *operand) {
      Operation *producer = operand->get().getDefiningOp();
      return isa_and_nonnull<linalg::GenericOp>(producer) &&
             producer->hasOneUse() &&
             isa<linalg::GenericOp>(operand->getOwner());
    };
    linalg::populateElementwiseOpsFusionPatterns(patterns, control);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
