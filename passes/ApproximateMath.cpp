//===- ApproximateMath.cpp - Inline polynomial math for the CPU -----------===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// qf-approximate-math: exp, expm1, log, log1p, log2, tanh, erf, sin, cos and
// atan on f32 become the upstream polynomial approximations (a few ULP), so
// that the loops of softmax, SiLU and GELU hold no libm calls: LLVM
// vectorizes them, and a T = 256 forward no longer spends a quarter of its
// time in expf. Only upstream rewrites are used
// (populateMathPolynomialApproximationPatterns).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Math/Transforms/Passes.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace qforge {
#define GEN_PASS_DEF_APPROXIMATEMATHPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;

namespace {
struct ApproximateMathPass
    : public qforge::impl::ApproximateMathPassBase<ApproximateMathPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    // The patterns ask by operation name ("math.exp").
    auto approximated = [](StringRef name) {
      name.consume_front("math.");
      return llvm::is_contained({"exp", "expm1", "log", "log1p", "log2", "tanh",
                                 "erf", "sin", "cos", "atan"},
                                name);
    };
    populateMathPolynomialApproximationPatterns(patterns, approximated);
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
