//===- FuseDequantMatmul.cpp - Form qf.fused_matmul -------------*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Tosa/Utils/ConversionUtils.h"
#include "mlir/IR/Matchers.h"
#include "mlir/IR/PatternMatch.h"
#include "mlir/Transforms/GreedyPatternRewriteDriver.h"

namespace qforge {
#define GEN_PASS_DEF_FUSEDEQUANTMATMULPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;
using namespace qforge;

namespace {

/// tosa.matmul(x, reshape(transpose(weight))) where weight is qf.dequantize,
/// possibly plus qf.sparse_outliers → qf.fused_matmul.
struct FuseMatmul : public OpRewritePattern<tosa::MatMulOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(tosa::MatMulOp matmul,
                                PatternRewriter &rewriter) const override {
    auto reshape = matmul.getB().getDefiningOp<tosa::ReshapeOp>();
    if (!reshape)
      return rewriter.notifyMatchFailure(matmul, "weight is not a reshape");
    auto transpose = reshape.getInput1().getDefiningOp<tosa::TransposeOp>();
    if (!transpose || transpose.getPerms() != ArrayRef<int32_t>{1, 0})
      return rewriter.notifyMatchFailure(matmul,
                                         "weight is not a 2-D transpose");
    Value weight = transpose.getInput1();
    auto outliers = weight.getDefiningOp<qf::SparseOutliersOp>();
    if (outliers)
      weight = outliers.getDense();
    auto dq = weight.getDefiningOp<qf::DequantizeOp>();
    if (!dq)
      return rewriter.notifyMatchFailure(matmul, "weight is not dequantized");
    auto xType = cast<RankedTensorType>(matmul.getA().getType());
    auto outType = cast<RankedTensorType>(matmul.getType());
    if (xType.getDimSize(0) != 1 || !isZero(matmul.getAZp()) ||
        !isZero(matmul.getBZp()))
      return rewriter.notifyMatchFailure(matmul,
                                         "batched or zero-point matmul");

    Location loc = matmul.getLoc();
    // The destination has the matmul's shape; leading dimensions may be
    // dynamic.
    SmallVector<Value> dynamicSizes;
    for (int64_t i = 0; i < outType.getRank(); ++i)
      if (outType.isDynamicDim(i))
        dynamicSizes.push_back(
            tensor::DimOp::create(rewriter, loc, matmul.getA(), i));
    Value init = tensor::EmptyOp::create(rewriter, loc, outType, dynamicSizes);
    Value rowPtr, colIdx, values;
    if (outliers) {
      rowPtr = outliers.getRowPtr();
      colIdx = outliers.getColIdx();
      values = outliers.getValues();
    }
    auto fused = qf::FusedMatmulOp::create(
        rewriter, loc, outType, matmul.getA(), dq.getCodes(), dq.getScales(),
        dq.getZeroPoints(), dq.getLut(), rowPtr, colIdx, values,
        /*bias=*/Value(), init, dq.getScheme());
    for (StringRef attr :
         {"qf.layer", "qf.weight_error", "qf.output_error", "qf.outlier_count"})
      if (Attribute a = dq->getAttr(attr))
        fused->setAttr(attr, a);
    rewriter.replaceOp(matmul, fused.getResult());
    return success();
  }

  static bool isZero(Value v) {
    return matchPattern(v, m_AnyZeroFloat()) || matchPattern(v, m_Zero());
  }
};

/// add(reshape*(fused_matmul), const bias broadcast along the last dimension)
/// → reshape*(fused_matmul with bias).
struct FuseBias : public OpRewritePattern<tosa::AddOp> {
  using OpRewritePattern::OpRewritePattern;

  LogicalResult matchAndRewrite(tosa::AddOp add,
                                PatternRewriter &rewriter) const override {
    for (auto [lhs, rhs] : {std::pair(add.getInput1(), add.getInput2()),
                            std::pair(add.getInput2(), add.getInput1())}) {
      if (lhs.getType() != add.getType())
        continue;
      // Walk up through single-use reshapes to the fused matmul.
      SmallVector<tosa::ReshapeOp> reshapes;
      Value v = lhs;
      while (auto r = v.getDefiningOp<tosa::ReshapeOp>()) {
        if (!r->hasOneUse())
          break;
        reshapes.push_back(r);
        v = r.getInput1();
      }
      auto fused = v.getDefiningOp<qf::FusedMatmulOp>();
      if (!fused || fused.getBias() || !fused->hasOneUse())
        continue;
      Value bias = biasVector(rewriter, rhs, fused.getN());
      if (!bias)
        continue;
      rewriter.modifyOpInPlace(fused,
                               [&] { fused.getBiasMutable().assign(bias); });
      rewriter.replaceOp(add, lhs);
      return success();
    }
    return rewriter.notifyMatchFailure(add, "not a bias add of a fused matmul");
  }

  /// Returns `v` as a 1-D [n] constant when it is a constant (behind reshapes)
  /// whose dimensions are all 1 except the last, which is n.
  static Value biasVector(PatternRewriter &rewriter, Value v, int64_t n) {
    auto type = dyn_cast<RankedTensorType>(v.getType());
    if (!type || !type.hasStaticShape() || type.getNumElements() != n ||
        type.getShape().back() != n)
      return {};
    Value source = v;
    while (auto r = source.getDefiningOp<tosa::ReshapeOp>())
      source = r.getInput1();
    if (!matchPattern(source, m_Constant()))
      return {};
    auto sourceType = cast<RankedTensorType>(source.getType());
    if (sourceType.getRank() == 1)
      return source;
    Location loc = v.getLoc();
    OpBuilder::InsertionGuard guard(rewriter);
    rewriter.setInsertionPointAfterValue(source);
    auto flat = RankedTensorType::get({n}, type.getElementType());
    return tosa::ReshapeOp::create(rewriter, loc, flat, source,
                                   tosa::getTosaConstShape(rewriter, loc, {n}));
  }
};

struct FuseDequantMatmulPass
    : public qforge::impl::FuseDequantMatmulPassBase<FuseDequantMatmulPass> {
  void runOnOperation() override {
    RewritePatternSet patterns(&getContext());
    patterns.add<FuseMatmul, FuseBias>(&getContext());
    if (failed(applyPatternsGreedily(getOperation(), std::move(patterns))))
      return signalPassFailure();
  }
};
} // namespace
