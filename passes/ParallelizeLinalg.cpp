//===- ParallelizeLinalg.cpp - Thread the large elementwise and row ops ---===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// qf-parallelize-linalg: each linalg op on buffers left after the matmul
// lowerings (elementwise chains, softmax and norm rows, transposes, fills)
// whose iteration space may reach `min-work` points becomes
//
//   scf.if (points >= min-work) {
//     scf.parallel (leading parallel loops) {   // threads through OpenMP
//       scf.for ... { body }                    // the innermost loop stays
//     }                                         // serial and contiguous
//   } else {
//     the op, lowered later by convert-linalg-to-loops
//   }
//
// The loops come from upstream linalgOpToLoops; only the leading parallel
// loops become one scf.parallel, and never the innermost loop, which LLVM
// vectorizes. Small ops (decode steps) keep plain loops and start no threads.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Linalg/Transforms/Transforms.h"
#include "mlir/IR/PatternMatch.h"

namespace qforge {
#define GEN_PASS_DEF_PARALLELIZELINALGPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;

namespace {
/// The number of leading parallel loops that become scf.parallel dimensions:
/// the parallel loops before the first reduction, without the innermost loop.
static unsigned threadedLoops(linalg::LinalgOp op) {
  SmallVector<utils::IteratorType> iterators = op.getIteratorTypesArray();
  unsigned lead = 0;
  while (lead < iterators.size() &&
         iterators[lead] == utils::IteratorType::parallel)
    ++lead;
  if (lead == iterators.size() && lead > 0)
    --lead;
  return lead;
}

/// Replaces the `count` outermost loops of a perfect scf.for nest by one
/// scf.parallel.
static void parallelizeOuterLoops(RewriterBase &rewriter,
                                  ArrayRef<Operation *> loops, unsigned count) {
  SmallVector<Value> lbs, ubs, steps;
  SmallVector<scf::ForOp> fors;
  for (unsigned i = 0; i < count; ++i) {
    auto loop = cast<scf::ForOp>(loops[i]);
    fors.push_back(loop);
    lbs.push_back(loop.getLowerBound());
    ubs.push_back(loop.getUpperBound());
    steps.push_back(loop.getStep());
  }
  rewriter.setInsertionPoint(fors.front());
  auto parallel =
      scf::ParallelOp::create(rewriter, fors.front().getLoc(), lbs, ubs, steps);
  Block *inner = fors.back().getBody();
  Block *body = parallel.getBody();
  for (Operation &op : llvm::make_early_inc_range(inner->without_terminator()))
    op.moveBefore(body->getTerminator());
  for (auto [loop, iv] : llvm::zip(fors, parallel.getInductionVars()))
    rewriter.replaceAllUsesWith(loop.getInductionVar(), iv);
  rewriter.eraseOp(fors.front());
}

struct ParallelizeLinalgPass
    : public qforge::impl::ParallelizeLinalgPassBase<ParallelizeLinalgPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<linalg::LinalgOp> ops;
    getOperation().walk([&](linalg::LinalgOp op) {
      if (op.hasPureBufferSemantics() && threadedLoops(op) > 0 &&
          !op->getParentOfType<scf::ParallelOp>())
        ops.push_back(op);
    });
    IRRewriter rewriter(&getContext());
    for (linalg::LinalgOp op : ops)
      if (failed(parallelize(rewriter, op)))
        return signalPassFailure();
  }

  LogicalResult parallelize(IRRewriter &rewriter, linalg::LinalgOp op) {
    bool isStatic = true;
    int64_t staticPoints = 1;
    for (int64_t size : op.getStaticLoopRanges()) {
      if (ShapedType::isDynamic(size))
        isStatic = false;
      else
        staticPoints *= size;
    }
    if (isStatic && staticPoints < minWork)
      return success();

    Location loc = op.getLoc();
    if (isStatic)
      return threadOp(rewriter, op, op); // statically large: always threaded
    rewriter.setInsertionPoint(op);
    Value points = arith::ConstantIndexOp::create(rewriter, loc, 1);
    for (Range range : op.createLoopRanges(rewriter, loc))
      points = arith::MulIOp::create(
          rewriter, loc, points,
          getValueOrCreateConstantIndexOp(rewriter, loc, range.size));
    Value large = arith::CmpIOp::create(
        rewriter, loc, arith::CmpIPredicate::uge, points,
        arith::ConstantIndexOp::create(rewriter, loc, minWork));
    auto branch = scf::IfOp::create(rewriter, loc, TypeRange{}, large,
                                    /*withElseRegion=*/true);
    rewriter.moveOpBefore(op, branch.elseBlock()->getTerminator());
    rewriter.setInsertionPoint(branch.thenBlock()->getTerminator());
    return threadOp(rewriter, op, cast<linalg::LinalgOp>(rewriter.clone(*op)));
  }

  /// Replaces `copy` (op itself or a clone of it) by its loops, the leading
  /// parallel ones as one scf.parallel.
  LogicalResult threadOp(IRRewriter &rewriter, linalg::LinalgOp op,
                         linalg::LinalgOp copy) {
    rewriter.setInsertionPoint(copy);
    FailureOr<linalg::LinalgLoops> loops =
        linalg::linalgOpToLoops(rewriter, copy);
    if (failed(loops) || loops->size() < threadedLoops(op))
      return op.emitError("qf-parallelize-linalg: cannot lower to loops");
    unsigned count = threadedLoops(op);
    rewriter.eraseOp(copy);
    parallelizeOuterLoops(rewriter, *loops, count);
    return success();
  }
};
} // namespace
