//===- OpsReduction.cpp - Reductions and normalisations -------------------===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// ReduceSum/Mean/Max/Min/Prod/L1/L2/SumSquare/LogSum/LogSumExp, ArgMax and
// ArgMin, Softmax, LogSoftmax and LayerNormalization, decomposed into
// `tosa.reduce_*` (one axis at a time, keeping the reduced dimensions) and
// elementwise TOSA:
//
//   Softmax(x)   = e / sum(e),  e = exp(x - max(x))
//   LayerNorm(x) = (x - mean) * rsqrt(mean((x - mean)^2) + epsilon)
//                  * scale + bias
//
//===----------------------------------------------------------------------===//

#include "GraphConverter.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"

#include "mlir/Dialect/Tosa/IR/TosaOps.h"

#include <numeric>

using namespace mlir;
using namespace qforge::importer::detail;

namespace {

using Binary = NodeContext::Binary;
using Reduce = NodeContext::Reduce;

/// Checked elementwise helpers on values whose shapes are known to agree.
struct Math {
  NodeContext &ctx;

  Value add(Value a, Value b) { return *ctx.binary(Binary::Add, a, b); }
  Value sub(Value a, Value b) { return *ctx.binary(Binary::Sub, a, b); }
  Value mul(Value a, Value b) { return *ctx.binary(Binary::Mul, a, b); }
  Value scale(Value a, double s) { return mul(a, ctx.scalarLike(a, s)); }
  Value exp(Value x) { return ctx.unary<tosa::ExpOp>(x); }
  Value log(Value x) { return ctx.unary<tosa::LogOp>(x); }
  Value recip(Value x) { return ctx.unary<tosa::ReciprocalOp>(x); }
  Value rsqrt(Value x) { return ctx.unary<tosa::RsqrtOp>(x); }
  Value sqrt(Value x) { return recip(rsqrt(x)); }
  Value abs(Value x) { return ctx.unary<tosa::AbsOp>(x); }
  /// Reduces over every axis in `axes`, keeping them as size 1.
  Value reduce(Reduce kind, Value x, ArrayRef<int64_t> axes) {
    for (int64_t axis : axes)
      x = ctx.reduce(kind, x, axis);
    return x;
  }
};

//===----------------------------------------------------------------------===//
// Reduce*
//===----------------------------------------------------------------------===//

enum class ReduceKind {
  Sum,
  Mean,
  Max,
  Min,
  Prod,
  L1,
  L2,
  SumSquare,
  LogSum,
  LogSumExp
};

/// Reduce*(data, axes): axes from the input (ReduceSum since opset 13, all
/// since 18) or the attribute; none means all axes unless
/// noop_with_empty_axes.
template <ReduceKind Kind> LogicalResult convertReduce(NodeContext &ctx) {
  FailureOr<TypedValue<RankedTensorType>> input = ctx.getTensorInput(0);
  if (failed(input))
    return failure();
  RankedTensorType type = input->getType();
  int64_t rank = type.getRank();
  Type elementType = type.getElementType();
  bool isFloat = isa<FloatType>(elementType);
  bool needsFloat = Kind != ReduceKind::Sum && Kind != ReduceKind::Max &&
                    Kind != ReduceKind::Min && Kind != ReduceKind::Prod &&
                    Kind != ReduceKind::SumSquare && Kind != ReduceKind::L1;
  if (elementType.isInteger(1) || (needsFloat && !isFloat))
    return ctx.fail(needsFloat ? "expects a float tensor"
                               : "expects a numeric tensor");

  FailureOr<std::optional<SmallVector<int64_t>>> axesOr =
      ctx.getAxes(1, "axes", rank);
  if (failed(axesOr))
    return failure();
  SmallVector<int64_t> axes;
  if (*axesOr && !(*axesOr)->empty()) {
    axes = **axesOr;
  } else if (ctx.getIntAttr("noop_with_empty_axes", 0) != 0) {
    return ctx.aliasOutput(0, 0);
  } else {
    for (int64_t d = 0; d < rank; ++d)
      axes.push_back(d);
  }
  llvm::sort(axes);
  bool keepDims = ctx.getIntAttr("keepdims", 1) != 0;

  Math m{ctx};
  Value x = *input;
  if (rank == 0) {
    // Nothing to reduce over; the elementwise part still applies.
    x = ctx.reshape(x, {1});
    axes = {0};
  }
  SmallVector<int64_t> reducedDims;
  for (int64_t axis : axes)
    reducedDims.push_back(cast<RankedTensorType>(x.getType()).getDimSize(axis));
  int64_t count = product(reducedDims);
  if (Kind == ReduceKind::Mean && ShapedType::isDynamic(count))
    return ctx.fail("the mean over a dynamic dimension is not supported; "
                    "pass --shape");

  Value result;
  switch (Kind) {
  case ReduceKind::Sum:
    result = m.reduce(Reduce::Sum, x, axes);
    break;
  case ReduceKind::Mean:
    result = m.scale(m.reduce(Reduce::Sum, x, axes), 1.0 / count);
    break;
  case ReduceKind::Max:
    result = m.reduce(Reduce::Max, x, axes);
    break;
  case ReduceKind::Min:
    result = m.reduce(Reduce::Min, x, axes);
    break;
  case ReduceKind::Prod:
    result = m.reduce(Reduce::Prod, x, axes);
    break;
  case ReduceKind::L1:
    result = m.reduce(Reduce::Sum, m.abs(x), axes);
    break;
  case ReduceKind::L2:
    result = m.sqrt(m.reduce(Reduce::Sum, m.mul(x, x), axes));
    break;
  case ReduceKind::SumSquare:
    result = m.reduce(Reduce::Sum, m.mul(x, x), axes);
    break;
  case ReduceKind::LogSum:
    result = m.log(m.reduce(Reduce::Sum, x, axes));
    break;
  case ReduceKind::LogSumExp: {
    // max + log(sum(exp(x - max))), which cannot overflow.
    Value max = m.reduce(Reduce::Max, x, axes);
    Value sum = m.reduce(Reduce::Sum, m.exp(m.sub(x, max)), axes);
    result = m.add(m.log(sum), max);
    break;
  }
  }

  SmallVector<int64_t> shape;
  for (int64_t d = 0; d < rank; ++d) {
    bool reduced = llvm::is_contained(axes, d);
    if (!reduced)
      shape.push_back(type.getDimSize(d));
    else if (keepDims)
      shape.push_back(1);
  }
  ctx.setOutput(0, ctx.reshape(result, shape));
  return success();
}

//===----------------------------------------------------------------------===//
// ArgMax, ArgMin
//===----------------------------------------------------------------------===//

/// ArgMax/ArgMin(data, axis, keepdims, select_last_index) as int64 via
/// `tosa.argmax` (which returns the first maximum). The last index is the
/// first of the reversed axis; ArgMin is ArgMax of the negation.
template <bool IsMin> LogicalResult convertArgMax(NodeContext &ctx) {
  FailureOr<TypedValue<RankedTensorType>> input = ctx.getTensorInput(0);
  if (failed(input))
    return failure();
  RankedTensorType type = input->getType();
  int64_t rank = type.getRank();
  if (rank == 0)
    return ctx.fail("data must have rank 1 or more");
  if (type.getElementType().isInteger(1))
    return ctx.fail("expects a numeric tensor");
  FailureOr<int64_t> axis = ctx.normalizeAxis(ctx.getIntAttr("axis", 0), rank);
  if (failed(axis))
    return failure();
  bool keepDims = ctx.getIntAttr("keepdims", 1) != 0;
  bool last = ctx.getIntAttr("select_last_index", 0) != 0;

  OpBuilder &b = ctx.getBuilder();
  Value x = *input;
  if (IsMin)
    x = ctx.negate(x);
  if (last)
    x = tosa::ReverseOp::create(b, ctx.getLoc(), type, x,
                                b.getI32IntegerAttr(*axis));
  SmallVector<int64_t> reduced;
  for (int64_t d = 0; d < rank; ++d)
    if (d != *axis)
      reduced.push_back(type.getDimSize(d));
  Type i32 = b.getI32Type();
  Value index = tosa::ArgMaxOp::create(b, ctx.getLoc(),
                                       RankedTensorType::get(reduced, i32), x,
                                       b.getI32IntegerAttr(*axis));
  if (last) {
    FailureOr<Value> fromEnd = ctx.binary(
        Binary::Sub, ctx.scalarLike(index, type.getDimSize(*axis) - 1), index);
    if (failed(fromEnd))
      return failure();
    index = *fromEnd;
  }
  index = ctx.castTo(index, b.getI64Type());
  if (keepDims) {
    SmallVector<int64_t> shape(type.getShape());
    shape[*axis] = 1;
    index = ctx.reshape(index, shape);
  }
  ctx.setOutput(0, index);
  return success();
}

//===----------------------------------------------------------------------===//
// CumSum
//===----------------------------------------------------------------------===//

/// CumSum(x, axis, exclusive, reverse). Of a constant it folds; otherwise the
/// axis moves last and the sums are one `tosa.matmul` with a constant 0/1
/// triangle T (T[j][i] = 1 when x[j] adds into out[i]). Integers are summed
/// in float64, exact below 2^53.
LogicalResult convertCumSum(NodeContext &ctx) {
  FailureOr<RankedTensorType> type = ctx.getInputType(0);
  if (failed(type))
    return failure();
  Type elementType = type->getElementType();
  if (elementType.isInteger(1))
    return ctx.fail("expects a numeric tensor");
  int64_t rank = type->getRank();
  if (rank == 0)
    return ctx.fail("input must have rank 1 or more");
  const ConstTensor *axisConst = ctx.getConstantInput(1);
  if (!axisConst || axisConst->getNumElements() != 1 ||
      failed(axisConst->getIntValues()))
    return ctx.fail("axis must be a constant integer scalar");
  FailureOr<int64_t> axis =
      ctx.normalizeAxis((*axisConst->getIntValues())[0], rank);
  if (failed(axis))
    return failure();
  bool exclusive = ctx.getIntAttr("exclusive", 0) != 0;
  bool reverse = ctx.getIntAttr("reverse", 0) != 0;
  int64_t length = type->getDimSize(*axis);
  auto contributes = [&](int64_t j, int64_t i) {
    return reverse ? (exclusive ? j > i : j >= i)
                   : (exclusive ? j < i : j <= i);
  };

  if (const ConstTensor *x = ctx.getConstantInput(0)) {
    if (NodeContext::isFoldable(x->getNumElements())) {
      SmallVector<HostValue> in = x->getHostValues(), out(in.size());
      int64_t inner = 1;
      for (int64_t d = *axis + 1; d < rank; ++d)
        inner *= type->getDimSize(d);
      int64_t outer =
          x->getNumElements() / std::max<int64_t>(1, length * inner);
      bool isFloat = isa<FloatType>(elementType);
      for (int64_t o = 0; o < outer; ++o)
        for (int64_t k = 0; k < inner; ++k)
          for (int64_t i = 0; i < length; ++i) {
            HostValue acc =
                isFloat ? HostValue::ofFloat(0) : HostValue::ofInt(0);
            for (int64_t j = 0; j < length; ++j) {
              if (!contributes(j, i))
                continue;
              const HostValue &v = in[(o * length + j) * inner + k];
              if (isFloat)
                acc.f += v.f;
              else
                acc.i += v.i;
            }
            out[(o * length + i) * inner + k] = acc;
          }
      ConstTensor result = ConstTensor::fromHostValues(*type, out);
      result.setWeight(x->isWeight());
      ctx.setConstantOutput(0, result);
      return success();
    }
  }

  FailureOr<TypedValue<RankedTensorType>> x = ctx.getTensorInput(0);
  if (failed(x))
    return failure();
  if (!type->hasStaticShape()) {
    // Sizes known only at run time: out[..., i, ...] = sum over j of
    // x[..., j, ...] where j contributes to i, as one linalg.generic with j
    // a reduction dimension (integers summed exactly in their own type).
    OpBuilder &b = ctx.getBuilder();
    Location loc = ctx.getLoc();
    MLIRContext *mc = ctx.getContext();
    SmallVector<Value> dynamic;
    for (int64_t d = 0; d < rank; ++d)
      if (type->isDynamicDim(d))
        dynamic.push_back(ctx.dimValue(SymDim::of(*x, d)));
    Value init =
        tensor::EmptyOp::create(b, loc, type->getShape(), elementType, dynamic);
    TypedAttr zeroAttr = isa<FloatType>(elementType)
                             ? TypedAttr(b.getFloatAttr(elementType, 0.0))
                             : TypedAttr(b.getIntegerAttr(elementType, 0));
    Value zero = arith::ConstantOp::create(b, loc, zeroAttr);
    init = linalg::FillOp::create(b, loc, ValueRange{zero}, ValueRange{init})
               .getResult(0);
    // Dimensions: the input's, then j (the summed position) last.
    SmallVector<AffineExpr> in, out;
    for (int64_t d = 0; d < rank; ++d) {
      in.push_back(d == *axis ? getAffineDimExpr(rank, mc)
                              : getAffineDimExpr(d, mc));
      out.push_back(getAffineDimExpr(d, mc));
    }
    SmallVector<AffineMap> maps = {AffineMap::get(rank + 1, 0, in, mc),
                                   AffineMap::get(rank + 1, 0, out, mc)};
    SmallVector<utils::IteratorType> iterators(rank + 1,
                                               utils::IteratorType::parallel);
    iterators.back() = utils::IteratorType::reduction;
    int64_t a = *axis;
    auto generic = linalg::GenericOp::create(
        b, loc, TypeRange{init.getType()}, ValueRange{*x}, ValueRange{init},
        maps, iterators, [&](OpBuilder &nb, Location nl, ValueRange args) {
          Value i = linalg::IndexOp::create(nb, nl, a);
          Value j = linalg::IndexOp::create(nb, nl, rank);
          arith::CmpIPredicate pred =
              reverse ? (exclusive ? arith::CmpIPredicate::ugt
                                   : arith::CmpIPredicate::uge)
                      : (exclusive ? arith::CmpIPredicate::ult
                                   : arith::CmpIPredicate::ule);
          Value takes = arith::CmpIOp::create(nb, nl, pred, j, i);
          Value term = arith::SelectOp::create(
              nb, nl, takes, args[0],
              arith::ConstantOp::create(nb, nl, zeroAttr));
          Value sum = isa<FloatType>(elementType)
                          ? Value(arith::AddFOp::create(nb, nl, args[1], term))
                          : Value(arith::AddIOp::create(nb, nl, args[1], term));
          linalg::YieldOp::create(nb, nl, sum);
        });
    ctx.setOutput(0, generic.getResult(0));
    return success();
  }
  if (type->getNumElements() == 0) {
    ctx.setOutput(0, *x);
    return success();
  }
  Type computeType = isa<FloatType>(elementType)
                         ? elementType
                         : Type(Float64Type::get(ctx.getContext()));
  SmallVector<int32_t> perm;
  for (int64_t d = 0; d < rank; ++d)
    if (d != *axis)
      perm.push_back(d);
  perm.push_back(*axis);
  SmallVector<int32_t> inverse(rank);
  for (int64_t d = 0; d < rank; ++d)
    inverse[perm[d]] = d;
  Value moved = ctx.transpose(ctx.castTo(*x, computeType), perm);
  auto movedType = cast<RankedTensorType>(moved.getType());
  int64_t rows = movedType.getNumElements() / length;

  SmallVector<HostValue> triangle;
  for (int64_t j = 0; j < length; ++j)
    for (int64_t i = 0; i < length; ++i)
      triangle.push_back(HostValue::ofInt(contributes(j, i)));
  Value t = ctx.constant(
      ConstTensor::fromHostValues(
          RankedTensorType::get({1, length, length}, computeType), triangle),
      ctx.getNode().output(0) + ".triangle");
  Value sums = ctx.matmul3D(ctx.reshape(moved, {1, rows, length}), t);
  Value back = ctx.transpose(ctx.reshape(sums, movedType.getShape()), inverse);
  ctx.setOutput(0, ctx.castTo(back, elementType));
  return success();
}

//===----------------------------------------------------------------------===//
// Softmax, LogSoftmax
//===----------------------------------------------------------------------===//

/// Softmax or LogSoftmax along `axis` (since opset 13) or, before, over the
/// input flattened to 2-D at `axis` (default 1).
template <bool IsLog> LogicalResult convertSoftmax(NodeContext &ctx) {
  FailureOr<TypedValue<RankedTensorType>> input = ctx.getTensorInput(0);
  if (failed(input))
    return failure();
  RankedTensorType type = input->getType();
  if (!isa<FloatType>(type.getElementType()))
    return ctx.fail("expects a float tensor");
  int64_t rank = type.getRank();
  if (rank == 0)
    return ctx.fail("input must have rank 1 or more");
  bool legacy = ctx.getOpset() < 13;
  FailureOr<int64_t> axis =
      ctx.normalizeAxis(ctx.getIntAttr("axis", legacy ? 1 : -1), rank);
  if (failed(axis))
    return failure();

  Value x = *input;
  int64_t reduceAxis = *axis;
  if (legacy && *axis != rank - 1) {
    int64_t outer = product(type.getShape().take_front(*axis));
    int64_t inner = product(type.getShape().drop_front(*axis));
    if (ShapedType::isDynamic(outer) && ShapedType::isDynamic(inner))
      return ctx.fail("dynamic dimensions on both sides of the axis are not "
                      "supported; pass --shape");
    x = ctx.reshape(x, {outer, inner});
    reduceAxis = 1;
  }
  Math m{ctx};
  Value shifted = m.sub(x, ctx.reduce(Reduce::Max, x, reduceAxis));
  Value e = m.exp(shifted);
  Value sum = ctx.reduce(Reduce::Sum, e, reduceAxis);
  Value result = IsLog ? m.sub(shifted, m.log(sum)) : m.mul(e, m.recip(sum));
  ctx.setOutput(0, ctx.reshape(result, type.getShape()));
  return success();
}

//===----------------------------------------------------------------------===//
// LayerNormalization
//===----------------------------------------------------------------------===//

/// LayerNormalization(X, Scale, B) over the dimensions from `axis` on,
/// computed in float32 when stash_type is 1; outputs Y and optionally Mean
/// and InvStdDev (with the normalised dimensions kept as 1).
LogicalResult convertLayerNormalization(NodeContext &ctx) {
  FailureOr<TypedValue<RankedTensorType>> input = ctx.getTensorInput(0);
  if (failed(input))
    return failure();
  RankedTensorType type = input->getType();
  Type elementType = type.getElementType();
  if (!isa<FloatType>(elementType))
    return ctx.fail("expects a float tensor");
  int64_t rank = type.getRank();
  if (rank == 0)
    return ctx.fail("input must have rank 1 or more");
  FailureOr<int64_t> axis = ctx.normalizeAxis(ctx.getIntAttr("axis", -1), rank);
  if (failed(axis))
    return failure();
  double epsilon = ctx.getFloatAttr("epsilon", 1e-5f);
  int64_t stashType = ctx.getIntAttr("stash_type", 1);
  Type computeType = elementType;
  if (stashType == onnx::TensorProto::FLOAT)
    computeType = Float32Type::get(ctx.getContext());
  else if (stashType != onnx::TensorProto::UNDEFINED &&
           getElementType(ctx.getContext(), stashType) != elementType)
    return ctx.fail("stash_type " + getONNXTypeName(stashType) +
                    " is not supported");

  int64_t outer = product(type.getShape().take_front(*axis));
  int64_t inner = product(type.getShape().drop_front(*axis));
  if (ShapedType::isDynamic(inner))
    return ctx.fail("normalising over a dynamic dimension is not supported; "
                    "pass --shape");
  Math m{ctx};
  Value x = ctx.reshape(ctx.castTo(*input, computeType), {outer, inner});
  Value mean = m.scale(ctx.reduce(Reduce::Sum, x, 1), 1.0 / inner);
  Value centered = m.sub(x, mean);
  Value variance = m.scale(
      ctx.reduce(Reduce::Sum, m.mul(centered, centered), 1), 1.0 / inner);
  Value invStdDev = m.rsqrt(m.add(variance, ctx.scalarLike(variance, epsilon)));
  Value normalized = m.mul(centered, invStdDev);
  Value y = ctx.reshape(ctx.castTo(normalized, elementType), type.getShape());

  for (unsigned i = 1; i < 3; ++i) {
    if (!ctx.hasInput(i))
      continue;
    FailureOr<TypedValue<RankedTensorType>> param = ctx.getTensorInput(i);
    if (failed(param))
      return failure();
    if (param->getType().getElementType() != elementType)
      return ctx.fail(Twine(i == 1 ? "Scale" : "B") +
                      " has another element type than X");
    FailureOr<Value> applied =
        ctx.binary(i == 1 ? Binary::Mul : Binary::Add, y, *param);
    if (failed(applied))
      return failure();
    if (cast<RankedTensorType>(applied->getType()).getShape() !=
        type.getShape())
      return ctx.fail(Twine(i == 1 ? "Scale" : "B") + " of shape " +
                      formatShape(param->getType().getShape()) +
                      " does not broadcast to X");
    y = *applied;
  }
  ctx.setOutput(0, y);

  SmallVector<int64_t> statShape(type.getShape().take_front(*axis));
  statShape.append(rank - *axis, 1);
  ctx.setOutput(1, ctx.reshape(mean, statShape));
  ctx.setOutput(2, ctx.reshape(invStdDev, statShape));
  return success();
}

} // namespace

void qforge::importer::detail::registerReductionOps(OpTable &table) {
  table["ReduceSum"] = {convertReduce<ReduceKind::Sum>, 1, 2};
  table["ReduceMean"] = {convertReduce<ReduceKind::Mean>, 1, 2};
  table["ReduceMax"] = {convertReduce<ReduceKind::Max>, 1, 2};
  table["ReduceMin"] = {convertReduce<ReduceKind::Min>, 1, 2};
  table["ReduceProd"] = {convertReduce<ReduceKind::Prod>, 1, 2};
  table["ReduceL1"] = {convertReduce<ReduceKind::L1>, 1, 2};
  table["ReduceL2"] = {convertReduce<ReduceKind::L2>, 1, 2};
  table["ReduceSumSquare"] = {convertReduce<ReduceKind::SumSquare>, 1, 2};
  table["ReduceLogSum"] = {convertReduce<ReduceKind::LogSum>, 1, 2};
  table["ReduceLogSumExp"] = {convertReduce<ReduceKind::LogSumExp>, 1, 2};
  table["CumSum"] = {convertCumSum, 2, 2};
  table["ArgMax"] = {convertArgMax<false>, 1, 1};
  table["ArgMin"] = {convertArgMax<true>, 1, 1};
  table["Softmax"] = {convertSoftmax<false>, 1, 1};
  table["LogSoftmax"] = {convertSoftmax<true>, 1, 1};
  table["LayerNormalization"] = {convertLayerNormalization, 2, 3, 1, 3};
}
