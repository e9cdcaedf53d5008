//===- OrderMatmulLoops.cpp - Loop order of float matmuls for the CPU -----===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// qf-order-matmul-loops: linalg.matmul and linalg.batch_matmul become
// linalg.generic ops whose reduction dimension k comes before the output
// column n, so that convert-linalg-to-loops emits
//   for b, m, k: for n: C[b, m, n] += A[b, m, k] * B[b, k, n]
// whose innermost loop walks B and C contiguously (LLVM vectorizes it),
// instead of a dot product down a column of B. Only upstream rewrites are
// used (linalg::generalizeNamedOp, linalg::interchangeGenericOp).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/IR/PatternMatch.h"

namespace qforge {
#define GEN_PASS_DEF_ORDERMATMULLOOPSPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;

namespace {
struct OrderMatmulLoopsPass
    : public qforge::impl::OrderMatmulLoopsPassBase<OrderMatmulLoopsPass> {
  void runOnOperation() override {
    SmallVector<linalg::LinalgOp> matmuls;
    getOperation().walk([&](linalg::LinalgOp op) {
      if (isa<linalg::MatmulOp, linalg::BatchMatmulOp>(op))
        matmuls.push_back(op);
    });
    IRRewriter rewriter(&getContext());
    for (linalg::LinalgOp op : matmuls) {
      // Iterators (m, n, k) or (b, m, n, k): swap the last two.
      SmallVector<unsigned> order = isa<linalg::MatmulOp>(op)
                                        ? SmallVector<unsigned>{0, 2, 1}
                                        : SmallVector<unsigned>{0, 1, 3, 2};
      rewriter.setInsertionPoint(op);
      FailureOr<linalg::GenericOp> generic =
          linalg::generalizeNamedOp(rewriter, op);
      if (failed(generic) ||
          failed(linalg::interchangeGenericOp(rewriter, *generic, order))) {
        op.emitOpError("qf-order-matmul-loops: cannot reorder the loops");
        return signalPassFailure();
      }
    }
  }
};
} // namespace
