//===- OpsLinear.cpp - MatMul and Gemm ------------------------------------===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// Matrix products become `tosa.matmul` on rank-3 operands. A weight of shape
// [K,N] is reshaped to [1,K,N] and the activation's batch dimensions fold
// into M ([...,M,K] -> [1,B*M,K]), the form the quantization passes match.
// When both operands carry batch dimensions they are broadcast and
// flattened into the matmul's batch instead.
//
//===----------------------------------------------------------------------===//

#include "GraphConverter.h"

#include "mlir/Dialect/Tosa/IR/TosaOps.h"

#include <numeric>

using namespace mlir;
using namespace qforge::importer::detail;

namespace {

LogicalResult checkFloatOperands(NodeContext &ctx, RankedTensorType a,
                                 RankedTensorType b) {
  if (!isa<FloatType>(a.getElementType()) ||
      a.getElementType() != b.getElementType())
    return ctx.fail("expects float operands of one element type");
  return success();
}

/// ONNX MatMul (numpy matmul semantics) of `a` and `b`.
FailureOr<Value> emitMatMul(NodeContext &ctx, TypedValue<RankedTensorType> a,
                            TypedValue<RankedTensorType> b) {
  RankedTensorType aType = a.getType(), bType = b.getType();
  if (failed(checkFloatOperands(ctx, aType, bType)))
    return failure();
  if (aType.getRank() == 0 || bType.getRank() == 0) {
    (void)ctx.fail("operands must have rank 1 or more");
    return failure();
  }

  // Rank-1 operands gain a unit M (for A) or N (for B), dropped at the end.
  SmallVector<int64_t> aShape(aType.getShape()), bShape(bType.getShape());
  bool dropM = aShape.size() == 1, dropN = bShape.size() == 1;
  if (dropM)
    aShape.insert(aShape.begin(), 1);
  if (dropN)
    bShape.push_back(1);
  int64_t m = aShape[aShape.size() - 2], k = aShape.back();
  int64_t n = bShape.back();
  int64_t bk = bShape[bShape.size() - 2];
  if (bk != k && !ShapedType::isDynamic(bk) && !ShapedType::isDynamic(k)) {
    (void)ctx.fail("inner dimensions differ: A is " +
                   formatShape(aType.getShape()) + ", B is " +
                   formatShape(bType.getShape()));
    return failure();
  }

  ArrayRef<int64_t> aBatch = ArrayRef<int64_t>(aShape).drop_back(2);
  ArrayRef<int64_t> bBatch = ArrayRef<int64_t>(bShape).drop_back(2);
  FailureOr<SmallVector<int64_t>> batch = ctx.broadcastShapes(aBatch, bBatch);
  if (failed(batch))
    return failure();

  Value result;
  if (product(bBatch) == 1) {
    // Weight-like B: fold A's batch into M.
    int64_t rows = product(ArrayRef<int64_t>(aShape).drop_back());
    Value a3 = ctx.reshape(a, {1, rows, k});
    Value b3 = ctx.reshape(b, {1, k, n});
    result = ctx.matmul3D(a3, b3);
  } else {
    // Batched B: broadcast both batches and flatten them.
    int64_t rank = batch->size();
    SmallVector<int64_t> aFull(*batch), bFull(*batch);
    aFull.append({m, k});
    bFull.append({k, n});
    Value aR = ctx.reshape(a, aShape);
    Value bR = ctx.reshape(b, bShape);
    aR = ctx.broadcastTo(ctx.expandRank(aR, rank + 2), aFull);
    bR = ctx.broadcastTo(ctx.expandRank(bR, rank + 2), bFull);
    int64_t batchSize = product(*batch);
    Value a3 = ctx.reshape(aR, {batchSize, m, k});
    Value b3 = ctx.reshape(bR, {batchSize, k, n});
    result = ctx.matmul3D(a3, b3);
  }

  SmallVector<int64_t> outShape(*batch);
  if (!dropM)
    outShape.push_back(m);
  if (!dropN)
    outShape.push_back(n);
  if (countDynamic(outShape) > 1 && product(bBatch) == 1) {
    // A's rows were folded into one dynamic M: its own dimensions give the
    // sizes back (B's batch is all ones, so the batch is A's, left-padded).
    int64_t aRank = aType.getRank();
    int64_t pad = int64_t(batch->size()) - (int64_t(aShape.size()) - 2);
    SmallVector<SymDim> dims;
    for (int64_t i = 0; i < int64_t(batch->size()); ++i)
      dims.push_back(i < pad ? SymDim::known((*batch)[i])
                             : SymDim::of(a, i - pad));
    if (!dropM)
      dims.push_back(SymDim::of(a, aRank - 2));
    if (!dropN)
      dims.push_back(SymDim::of(b, bType.getRank() - 1));
    return ctx.reshapeTo(result, dims);
  }
  return ctx.reshape(result, outShape);
}

LogicalResult convertMatMul(NodeContext &ctx) {
  FailureOr<TypedValue<RankedTensorType>> a = ctx.getTensorInput(0);
  if (failed(a))
    return failure();
  FailureOr<TypedValue<RankedTensorType>> b = ctx.getTensorInput(1);
  if (failed(b))
    return failure();
  FailureOr<Value> result = emitMatMul(ctx, *a, *b);
  if (failed(result))
    return failure();
  ctx.setOutput(0, *result);
  return success();
}

/// Gemm: Y = alpha * A' * B' + beta * C, with A' = transA ? A^T : A and
/// B' likewise. A constant B with transB is transposed on the host so the
/// weight appears as [K,N] like MatMul's; its `tosa.const` keeps the ONNX
/// name in `qf.name` and is marked `qf.transposed`.
LogicalResult convertGemm(NodeContext &ctx) {
  float alpha = ctx.getFloatAttr("alpha", 1.0f);
  float beta = ctx.getFloatAttr("beta", 1.0f);
  bool transA = ctx.getIntAttr("transA", 0) != 0;
  bool transB = ctx.getIntAttr("transB", 0) != 0;

  FailureOr<TypedValue<RankedTensorType>> a = ctx.getTensorInput(0);
  if (failed(a))
    return failure();
  if (a->getType().getRank() != 2)
    return ctx.fail("A must have rank 2, got " +
                    formatShape(a->getType().getShape()));
  Value aT = transA ? ctx.transpose(*a, {1, 0}) : Value(*a);

  Value bT;
  const ConstTensor *bConst = ctx.getConstantInput(1);
  if (transB && bConst && bConst->getType().getRank() == 2) {
    bT = ctx.constant(bConst->transposed({1, 0}), ctx.getInputName(1));
    bT.getDefiningOp()->setAttr("qf.transposed",
                                UnitAttr::get(ctx.getContext()));
  } else {
    FailureOr<TypedValue<RankedTensorType>> b = ctx.getTensorInput(1);
    if (failed(b))
      return failure();
    if (b->getType().getRank() != 2)
      return ctx.fail("B must have rank 2, got " +
                      formatShape(b->getType().getShape()));
    bT = transB ? ctx.transpose(*b, {1, 0}) : Value(*b);
  }

  auto aType = cast<RankedTensorType>(aT.getType());
  auto bType = cast<RankedTensorType>(bT.getType());
  if (failed(checkFloatOperands(ctx, aType, bType)))
    return failure();
  int64_t m = aType.getDimSize(0), k = aType.getDimSize(1);
  int64_t n = bType.getDimSize(1);
  if (bType.getDimSize(0) != k)
    return ctx.fail("inner dimensions differ: A' is " +
                    formatShape(aType.getShape()) + ", B' is " +
                    formatShape(bType.getShape()));
  Type elementType = aType.getElementType();

  Value a3 = ctx.reshape(aT, {1, m, k});
  Value b3 = ctx.reshape(bT, {1, k, n});
  Value y = ctx.reshape(ctx.matmul3D(a3, b3), {m, n});
  if (alpha != 1.0f) {
    FailureOr<Value> scaled = ctx.binary(NodeContext::Binary::Mul, y,
                                         ctx.splat(elementType, alpha, {1, 1}));
    if (failed(scaled))
      return failure();
    y = *scaled;
  }
  if (ctx.hasInput(2) && beta != 0.0f) {
    FailureOr<TypedValue<RankedTensorType>> c = ctx.getTensorInput(2);
    if (failed(c))
      return failure();
    Value cv = *c;
    if (beta != 1.0f) {
      int64_t rank = c->getType().getRank();
      FailureOr<Value> scaled = ctx.binary(
          NodeContext::Binary::Mul, cv,
          ctx.splat(elementType, beta,
                    SmallVector<int64_t>(std::max<int64_t>(rank, 1), 1)));
      if (failed(scaled))
        return failure();
      cv = *scaled;
    }
    FailureOr<Value> sum = ctx.binary(NodeContext::Binary::Add, y, cv);
    if (failed(sum))
      return failure();
    if (cast<RankedTensorType>(sum->getType()).getShape() !=
        ArrayRef<int64_t>{m, n})
      return ctx.fail("C of shape " + formatShape(c->getType().getShape()) +
                      " does not broadcast to " + formatShape({m, n}));
    y = *sum;
  }
  ctx.setOutput(0, y);
  return success();
}

} // namespace

void qforge::importer::detail::registerLinearOps(OpTable &table) {
  table["MatMul"] = {convertMatMul, 2, 2};
  table["Gemm"] = {convertGemm, 2, 3};
}
