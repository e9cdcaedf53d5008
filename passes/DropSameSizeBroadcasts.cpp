//===- DropSameSizeBroadcasts.cpp - Fold dynamic-broadcast guards ---------===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// qf-drop-same-size-broadcasts: tosa-to-linalg lowers an elementwise op whose
// operands share a dynamic dimension (the sequence length) with a run-time
// guard per operand and dimension:
//
//   %c = arith.cmpi eq, %n, 1
//   %y = scf.if %c {                      // the operand's size is 1: broadcast
//     %e = tensor.empty(%m)
//     %b = linalg.generic ins(%x) outs(%e) { yield %in }  // (d0,d1) -> (d0,0)
//     scf.yield %b
//   } else { scf.yield %x }
//
// Where %n is the size of %x along the broadcast dimension and the output's
// size %m is provably the same value (ValueBoundsConstraintSet), the
// then-branch copies a size-1 dimension onto itself: %y is %x on both paths.
// The guard goes, and with it the region boundary that kept
// linalg-fuse-elementwise-ops from fusing the chains of a transformer block.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Interfaces/ValueBoundsOpInterface.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace qforge {
#define GEN_PASS_DEF_DROPSAMESIZEBROADCASTSPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;

namespace {
// The broadcasting copy that `region` yields (a linalg.generic forwarding its
// one input into a tensor.empty), or null.
static linalg::GenericOp broadcastCopyIn(Region &region) {
  Block &block = region.front();
  auto yield = cast<scf::YieldOp>(block.getTerminator());
  if (yield.getNumOperands() != 1)
    return {};
  auto generic = yield.getOperand(0).getDefiningOp<linalg::GenericOp>();
  if (!generic || generic->getBlock() != &block ||
      generic.getNumDpsInputs() != 1 || generic.getNumDpsInits() != 1 ||
      generic.getNumReductionLoops() != 0 || !generic.hasPureTensorSemantics())
    return {};
  // The body forwards the input element unchanged.
  Block &body = generic.getRegion().front();
  auto bodyYield = cast<linalg::YieldOp>(body.getTerminator());
  if (body.getOperations().size() != 1 ||
      bodyYield.getOperand(0) != body.getArgument(0))
    return {};
  if (!generic.getDpsInitOperand(0)->get().getDefiningOp<tensor::EmptyOp>())
    return {};
  return generic;
}

struct DropSameSizeBroadcast : OpRewritePattern<scf::IfOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(scf::IfOp ifOp,
                                PatternRewriter &rewriter) const override {
    if (ifOp.getNumResults() != 1 || ifOp.getElseRegion().empty())
      return failure();
    auto elseYield = cast<scf::YieldOp>(ifOp.elseBlock()->getTerminator());
    Value source = elseYield.getOperand(0);
    if (source.getParentRegion() == &ifOp.getElseRegion())
      return failure();
    linalg::GenericOp copy = broadcastCopyIn(ifOp.getThenRegion());
    if (!copy || copy.getDpsInputOperand(0)->get() != source ||
        source.getType() != ifOp.getResult(0).getType())
      return failure();

    // The guard: `size == 1` on one dimension of the source.
    auto cmp = ifOp.getCondition().getDefiningOp<arith::CmpIOp>();
    if (!cmp || cmp.getPredicate() != arith::CmpIPredicate::eq)
      return failure();
    Value guarded = cmp.getLhs();
    if (!matchPattern(cmp.getRhs(), m_One()))
      return failure();

    auto type = cast<RankedTensorType>(source.getType());
    AffineMap inputMap =
        copy.getMatchingIndexingMap(copy.getDpsInputOperand(0));
    AffineMap outputMap =
        copy.getMatchingIndexingMap(copy.getDpsInitOperand(0));
    if (!outputMap.isIdentity() || inputMap.getNumResults() != type.getRank())
      return failure();
    Value output = copy.getDpsInitOperand(0)->get();
    for (int64_t d = 0; d < type.getRank(); ++d) {
      AffineExpr expr = inputMap.getResult(d);
      if (expr == rewriter.getAffineDimExpr(d))
        continue; // copied, not broadcast
      auto zero = dyn_cast<AffineConstantExpr>(expr);
      if (!zero || zero.getValue() != 0)
        return failure();
      if (type.getDimSize(d) == 1)
        continue; // a static size-1 dimension: broadcasting it is a copy
      // A dynamic broadcast dimension: the guard must test its size (so the
      // copy runs only where it is 1), and the output must have that size.
      using Var = ValueBoundsConstraintSet::Variable;
      FailureOr<bool> guardsIt =
          ValueBoundsConstraintSet::areEqual(Var(source, d), Var(guarded));
      FailureOr<bool> sameSize =
          ValueBoundsConstraintSet::areEqual(Var(source, d), Var(output, d));
      if (failed(guardsIt) || !*guardsIt || failed(sameSize) || !*sameSize)
        return failure();
    }
    rewriter.replaceOp(ifOp, source);
    return success();
  }
};

struct DropSameSizeBroadcastsPass
    : public qforge::impl::DropSameSizeBroadcastsPassBase<
          DropSameSizeBroadcastsPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<DropSameSizeBroadcast>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      signalPassFailure();
  }
};
} // namespace
