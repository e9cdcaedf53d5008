//===- OpsIndexing.cpp - Selecting and joining parts of tensors -----------===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// Gather, GatherElements, Slice, Split, Concat, Trilu: operators that select
// or join parts of tensors. Of constants they fold
// (whatever the size: they only move bytes); otherwise Gather becomes
// `tosa.gather` on a [N,K,C] view, Slice and Split `tosa.slice` (strided
// slices gather the selected indices, a step of -1 is a `tosa.reverse`),
// Concat `tosa.concat`, and Trilu a `tosa.select` with a constant mask.
//
//===----------------------------------------------------------------------===//

#include "GraphConverter.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tosa/IR/TosaOps.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

#include <numeric>

using namespace mlir;
using namespace qforge::importer::detail;

namespace {

/// Binds output `i` to an empty tensor of `shape` (a constant: TOSA has no
/// use for zero-sized values).
void setEmptyOutput(NodeContext &ctx, unsigned i, ArrayRef<int64_t> shape,
                    Type elementType) {
  ctx.setConstantOutput(i,
                        ConstTensor(RankedTensorType::get(shape, elementType),
                                    std::vector<char>()));
}

/// `tosa.gather` of `indices` (a 1-D or N-D i32 tensor, values in [0, K))
/// along `axis` of `value`; the result has `value`'s dimensions with `axis`
/// replaced by the indices' dimensions.
Value gatherAlong(NodeContext &ctx, Value value, int64_t axis, Value indices) {
  auto type = cast<RankedTensorType>(value.getType());
  auto indexType = cast<RankedTensorType>(indices.getType());
  ArrayRef<int64_t> shape = type.getShape();
  int64_t n = product(shape.take_front(axis));
  int64_t k = shape[axis];
  int64_t c = product(shape.drop_front(axis + 1));
  int64_t w = product(indexType.getShape());
  Value values = ctx.reshape(value, {n, k, c});
  Value index2 = ctx.reshape(indices, {1, w});
  if (n != 1)
    index2 = ctx.broadcastTo(index2, {n, w});
  Value gathered = tosa::GatherOp::create(
      ctx.getBuilder(), ctx.getLoc(), type.clone({n, w, c}), values, index2);
  // The result's sizes: value's outer dimensions, the indices', value's
  // inner ones (named, so that several may be dynamic).
  SmallVector<SymDim> outDims;
  for (int64_t d = 0; d < type.getRank(); ++d) {
    if (d != axis) {
      outDims.push_back(SymDim::of(value, d));
      continue;
    }
    for (int64_t i = 0; i < indexType.getRank(); ++i)
      outDims.push_back(SymDim::of(indices, i));
  }
  SmallVector<int64_t> outShape;
  for (const SymDim &d : outDims)
    outShape.push_back(d.isKnown() ? d.value : ShapedType::kDynamic);
  if (countDynamic(outShape) > 1)
    return ctx.reshapeTo(gathered, outDims);
  return ctx.reshape(gathered, outShape);
}

/// An i32 constant of `indices` shaped `shape`.
Value indexConstant(NodeContext &ctx, ArrayRef<int64_t> indices,
                    ArrayRef<int64_t> shape) {
  Type i32 = IntegerType::get(ctx.getContext(), 32);
  ConstTensor tensor =
      ConstTensor::fromInts(RankedTensorType::get(shape, i32), indices);
  return ctx.constant(tensor, "indices");
}

//===----------------------------------------------------------------------===//
// Gather
//===----------------------------------------------------------------------===//

LogicalResult convertGather(NodeContext &ctx) {
  FailureOr<RankedTensorType> dataType = ctx.getInputType(0);
  FailureOr<RankedTensorType> indexType = ctx.getInputType(1);
  if (failed(dataType) || failed(indexType))
    return failure();
  int64_t rank = dataType->getRank();
  if (rank == 0)
    return ctx.fail("data must have rank 1 or more");
  FailureOr<int64_t> axis = ctx.normalizeAxis(ctx.getIntAttr("axis", 0), rank);
  if (failed(axis))
    return failure();
  if (!isa<IntegerType>(indexType->getElementType()) ||
      indexType->getElementType().isInteger(1))
    return ctx.fail("indices must be integers");
  ArrayRef<int64_t> shape = dataType->getShape();
  int64_t k = shape[*axis];
  if (ShapedType::isDynamic(k))
    return ctx.fail("gathering along a dynamic dimension is not supported; "
                    "pass --shape");
  SmallVector<int64_t> outShape(shape.take_front(*axis));
  llvm::append_range(outShape, indexType->getShape());
  llvm::append_range(outShape, shape.drop_front(*axis + 1));

  // Constant indices, checked and made non-negative on the host.
  SmallVector<int64_t> indices;
  const ConstTensor *indexConst = ctx.getConstantInput(1);
  if (indexConst) {
    indices = *indexConst->getIntValues();
    for (int64_t &i : indices) {
      if (i < -k || i >= k)
        return ctx.fail("index " + Twine(i) + " is out of range for axis " +
                        "of size " + Twine(k));
      if (i < 0)
        i += k;
    }
  }

  if (product(outShape) == 0) {
    setEmptyOutput(ctx, 0, outShape, dataType->getElementType());
    return success();
  }

  const ConstTensor *data = ctx.getConstantInput(0);
  if (data && indexConst) {
    int64_t indexRank = indexType->getRank();
    ArrayRef<int64_t> indexShape = indexType->getShape();
    ctx.setConstantOutput(
        0, data->remapped(outShape, [&](ArrayRef<int64_t> out) {
          // out = [outer..., index dims..., inner...]
          int64_t flatIndex = 0;
          for (int64_t d = 0; d < indexRank; ++d)
            flatIndex = flatIndex * indexShape[d] + out[*axis + d];
          int64_t src = 0;
          for (int64_t d = 0; d < rank; ++d) {
            int64_t i = d < *axis    ? out[d]
                        : d == *axis ? indices[flatIndex]
                                     : out[d - 1 + indexRank];
            src = src * shape[d] + i;
          }
          return src;
        }));
    return success();
  }

  FailureOr<TypedValue<RankedTensorType>> value = ctx.getTensorInput(0);
  if (failed(value))
    return failure();
  if (indexConst && indices.size() == 1) {
    // One index: a slice.
    SmallVector<int64_t> start(rank, 0), size(shape);
    start[*axis] = indices[0];
    size[*axis] = 1;
    ctx.setOutput(0, ctx.reshape(ctx.slice(*value, start, size), outShape));
    return success();
  }
  Value indexValue;
  if (indexConst) {
    indexValue = indexConstant(ctx, indices, indexType->getShape());
  } else {
    FailureOr<TypedValue<RankedTensorType>> dynamic = ctx.getTensorInput(1);
    if (failed(dynamic))
      return failure();
    indexValue = ctx.castTo(*dynamic, IntegerType::get(ctx.getContext(), 32));
    // Negative indices count from the end.
    Value zero = ctx.scalarLike(indexValue, 0);
    FailureOr<Value> negative =
        ctx.binary(NodeContext::Binary::Less, indexValue, zero);
    FailureOr<Value> wrapped = ctx.binary(NodeContext::Binary::Add, indexValue,
                                          ctx.scalarLike(indexValue, k));
    if (failed(negative) || failed(wrapped))
      return failure();
    FailureOr<Value> fixed = ctx.select(*negative, *wrapped, indexValue);
    if (failed(fixed))
      return failure();
    indexValue = *fixed;
  }
  ctx.setOutput(0, gatherAlong(ctx, *value, *axis, indexValue));
  return success();
}

//===----------------------------------------------------------------------===//
// GatherElements
//===----------------------------------------------------------------------===//

/// GatherElements(data, indices, axis): out[p] = data[p with p[axis] =
/// indices[p]]. Emitted as one `tosa.gather` from the flattened data at the
/// linear index base[p] + indices[p] * stride(axis), where `base` is a host
/// constant.
LogicalResult convertGatherElements(NodeContext &ctx) {
  FailureOr<RankedTensorType> dataType = ctx.getInputType(0);
  FailureOr<RankedTensorType> indexType = ctx.getInputType(1);
  if (failed(dataType) || failed(indexType))
    return failure();
  int64_t rank = dataType->getRank();
  if (rank == 0 || indexType->getRank() != rank)
    return ctx.fail("data and indices must have one rank of 1 or more");
  if (failed(ctx.requireStatic(*dataType, "data")) ||
      failed(ctx.requireStatic(*indexType, "indices")))
    return failure();
  if (!isa<IntegerType>(indexType->getElementType()) ||
      indexType->getElementType().isInteger(1))
    return ctx.fail("indices must be integers");
  FailureOr<int64_t> axis = ctx.normalizeAxis(ctx.getIntAttr("axis", 0), rank);
  if (failed(axis))
    return failure();
  ArrayRef<int64_t> dataShape = dataType->getShape();
  ArrayRef<int64_t> shape = indexType->getShape();
  for (int64_t d = 0; d < rank; ++d)
    if (d != *axis && shape[d] > dataShape[d])
      return ctx.fail("indices of shape " + formatShape(shape) +
                      " exceed data of shape " + formatShape(dataShape));
  int64_t dim = dataShape[*axis];
  if (product(shape) == 0) {
    setEmptyOutput(ctx, 0, shape, dataType->getElementType());
    return success();
  }

  SmallVector<int64_t> strides(rank, 1);
  for (int64_t d = rank - 2; d >= 0; --d)
    strides[d] = strides[d + 1] * dataShape[d + 1];
  // Linear index of each position with the axis coordinate set to 0.
  SmallVector<int64_t> base;
  base.reserve(product(shape));
  SmallVector<int64_t> index(rank, 0);
  for (int64_t e = 0, n = product(shape); e < n; ++e) {
    int64_t linear = 0;
    for (int64_t d = 0; d < rank; ++d)
      if (d != *axis)
        linear += index[d] * strides[d];
    base.push_back(linear);
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (++index[d] < shape[d])
        break;
      index[d] = 0;
    }
  }

  const ConstTensor *indexConst = ctx.getConstantInput(1);
  SmallVector<int64_t> linear;
  if (indexConst) {
    SmallVector<int64_t> indices = *indexConst->getIntValues();
    for (auto [i, b] : llvm::zip_equal(indices, base)) {
      if (i < -dim || i >= dim)
        return ctx.fail("index " + Twine(i) + " is out of range for axis " +
                        "of size " + Twine(dim));
      linear.push_back(b + (i < 0 ? i + dim : i) * strides[*axis]);
    }
    if (const ConstTensor *data = ctx.getConstantInput(0)) {
      ctx.setConstantOutput(0, data->remapped(shape, [&](ArrayRef<int64_t> p) {
        int64_t flat = 0;
        for (int64_t d = 0; d < rank; ++d)
          flat = flat * shape[d] + p[d];
        return linear[flat];
      }));
      return success();
    }
  }

  FailureOr<TypedValue<RankedTensorType>> data = ctx.getTensorInput(0);
  if (failed(data))
    return failure();
  int64_t w = product(shape);
  Value linearIndex;
  if (indexConst) {
    linearIndex = indexConstant(ctx, linear, {1, w});
  } else {
    FailureOr<TypedValue<RankedTensorType>> dynamic = ctx.getTensorInput(1);
    if (failed(dynamic))
      return failure();
    using Binary = NodeContext::Binary;
    Value idx = ctx.castTo(*dynamic, IntegerType::get(ctx.getContext(), 32));
    FailureOr<Value> negative =
        ctx.binary(Binary::Less, idx, ctx.scalarLike(idx, 0));
    FailureOr<Value> wrapped =
        ctx.binary(Binary::Add, idx, ctx.scalarLike(idx, dim));
    if (failed(negative) || failed(wrapped))
      return failure();
    FailureOr<Value> fixed = ctx.select(*negative, *wrapped, idx);
    if (failed(fixed))
      return failure();
    FailureOr<Value> scaled =
        ctx.binary(Binary::Mul, *fixed, ctx.scalarLike(*fixed, strides[*axis]));
    if (failed(scaled))
      return failure();
    FailureOr<Value> sum =
        ctx.binary(Binary::Add, *scaled, indexConstant(ctx, base, shape));
    if (failed(sum))
      return failure();
    linearIndex = ctx.reshape(*sum, {1, w});
  }
  Value flat = ctx.reshape(*data, {1, product(dataShape), 1});
  Value gathered = tosa::GatherOp::create(
      ctx.getBuilder(), ctx.getLoc(),
      RankedTensorType::get({1, w, 1}, dataType->getElementType()), flat,
      linearIndex);
  ctx.setOutput(0, ctx.reshape(gathered, shape));
  return success();
}

//===----------------------------------------------------------------------===//
// Slice
//===----------------------------------------------------------------------===//

/// One sliced axis: `count` elements from `start` by `step`.
struct AxisSlice {
  int64_t start = 0;
  int64_t step = 1;
  int64_t count = 0;
};

/// Clamps ONNX slice bounds to a dimension of size `dim`.
AxisSlice resolveSlice(int64_t start, int64_t end, int64_t step, int64_t dim) {
  if (start < 0)
    start += dim;
  if (end < 0)
    end += dim;
  AxisSlice s;
  s.step = step;
  if (step > 0) {
    start = std::clamp<int64_t>(start, 0, dim);
    end = std::clamp<int64_t>(end, 0, dim);
    s.count = end > start ? (end - start + step - 1) / step : 0;
  } else {
    start = std::clamp<int64_t>(start, 0, dim - 1);
    end = std::clamp<int64_t>(end, -1, dim - 1);
    s.count = start > end ? (start - end - step - 1) / -step : 0;
  }
  s.start = start;
  return s;
}

/// `value` sliced per axis; `slices` has one entry per dimension.
Value emitSlice(NodeContext &ctx, Value value, ArrayRef<AxisSlice> slices) {
  auto type = cast<RankedTensorType>(value.getType());
  int64_t rank = type.getRank();
  // First the contiguous bounding box of every axis.
  SmallVector<int64_t> start(rank), size(rank);
  for (int64_t d = 0; d < rank; ++d) {
    const AxisSlice &s = slices[d];
    int64_t last = s.start + (s.count - 1) * s.step;
    start[d] = std::min(s.start, last);
    size[d] = std::abs(last - s.start) + 1;
  }
  Value result = ctx.slice(value, start, size);
  // Then the strided axes.
  for (int64_t d = 0; d < rank; ++d) {
    const AxisSlice &s = slices[d];
    if (s.step == 1 || s.count == 1)
      continue;
    if (s.step == -1) {
      auto resultType = cast<RankedTensorType>(result.getType());
      result = tosa::ReverseOp::create(ctx.getBuilder(), ctx.getLoc(),
                                       resultType, result,
                                       ctx.getBuilder().getI32IntegerAttr(d));
      continue;
    }
    SmallVector<int64_t> indices;
    for (int64_t i = 0; i < s.count; ++i)
      indices.push_back(s.start + i * s.step - start[d]);
    result =
        gatherAlong(ctx, result, d, indexConstant(ctx, indices, {s.count}));
  }
  return result;
}

/// Slice with bounds or sliced dimensions known only at run time:
/// `tensor.extract_slice` with the ONNX clamping done in `index` arithmetic
/// (folded where known). `starts`/`ends` are per sliced axis; steps are 1.
LogicalResult emitDynamicSlice(NodeContext &ctx, ArrayRef<int64_t> axes,
                               ArrayRef<SymDim> starts, ArrayRef<SymDim> ends) {
  FailureOr<Value> data = ctx.getInput(0);
  if (failed(data))
    return failure();
  OpBuilder &b = ctx.getBuilder();
  Location loc = ctx.getLoc();
  int64_t rank = cast<RankedTensorType>(data->getType()).getRank();
  SmallVector<OpFoldResult> offsets(rank, b.getIndexAttr(0)), sizes,
      strides(rank, b.getIndexAttr(1));
  for (int64_t d = 0; d < rank; ++d) {
    SymDim dim = SymDim::of(*data, d);
    sizes.push_back(dim.isKnown() ? OpFoldResult(b.getIndexAttr(dim.value))
                                  : OpFoldResult(ctx.dimValue(dim)));
  }
  auto fold = [&](Value v) -> OpFoldResult {
    if (std::optional<int64_t> c = getConstantIntValue(v))
      return b.getIndexAttr(*c);
    return v;
  };
  for (auto [axis, start, end] : llvm::zip_equal(axes, starts, ends)) {
    Value dim = ctx.dimValue(*data, axis);
    Value zero = ctx.dimValue(SymDim::known(0));
    // A known negative bound counts from the end; then clamp to [0, dim].
    auto bound = [&](const SymDim &s) -> Value {
      if (s.isKnown() && s.value == 0)
        return zero;
      Value v = ctx.dimValue(s);
      if (s.isKnown() && s.value < 0)
        v = b.createOrFold<arith::AddIOp>(loc, dim, v);
      v = b.createOrFold<arith::MaxSIOp>(loc, v, zero);
      return b.createOrFold<arith::MinSIOp>(loc, v, dim);
    };
    Value first = bound(start);
    Value last = bound(end);
    Value size = b.createOrFold<arith::MaxSIOp>(
        loc, b.createOrFold<arith::SubIOp>(loc, last, first), zero);
    offsets[axis] = fold(first);
    sizes[axis] = fold(size);
  }
  ctx.setOutput(0, tensor::ExtractSliceOp::create(b, loc, *data, offsets, sizes,
                                                  strides));
  return success();
}

/// Slice(data, starts, ends, axes, steps); before opset 10 starts, ends and
/// axes are attributes.
LogicalResult convertSlice(NodeContext &ctx) {
  FailureOr<RankedTensorType> type = ctx.getInputType(0);
  if (failed(type))
    return failure();
  int64_t rank = type->getRank();
  if (rank == 0)
    return ctx.fail("data must have rank 1 or more");

  SmallVector<int64_t> starts, ends, axes, steps;
  auto readInput = [&](unsigned i, StringRef what,
                       SmallVectorImpl<int64_t> &out) -> LogicalResult {
    const ConstTensor *constant = ctx.getConstantInput(i);
    if (!constant)
      return ctx.fail(what + " input '" + ctx.getInputName(i) +
                      "' is not a constant");
    FailureOr<SmallVector<int64_t>> values = constant->getIntValues();
    if (failed(values))
      return ctx.fail(what + " must be integers");
    out.assign(values->begin(), values->end());
    return success();
  };
  if (ctx.getOpset() < 10) {
    starts = ctx.getIntsAttr("starts").value_or(SmallVector<int64_t>());
    ends = ctx.getIntsAttr("ends").value_or(SmallVector<int64_t>());
    if (auto a = ctx.getIntsAttr("axes"))
      axes = *a;
  } else {
    std::optional<ShapeValue> startValue = ctx.getShapeInput(1);
    std::optional<ShapeValue> endValue = ctx.getShapeInput(2);
    bool symbolic = startValue && endValue &&
                    (!startValue->isKnown() || !endValue->isKnown());
    if (symbolic || !type->hasStaticShape()) {
      if (!startValue || !endValue)
        return ctx.fail("starts and ends must be constants or shapes when "
                        "slicing dynamically");
      if (ctx.hasInput(3) && failed(readInput(3, "axes", axes)))
        return failure();
      if (ctx.hasInput(4) && failed(readInput(4, "steps", steps)))
        return failure();
      size_t n = startValue->elements.size();
      if (axes.empty())
        for (size_t i = 0; i < n; ++i)
          axes.push_back(i);
      if (endValue->elements.size() != n || axes.size() != n ||
          (!steps.empty() && steps.size() != n))
        return ctx.fail("starts, ends, axes and steps differ in length");
      if (llvm::any_of(steps, [](int64_t s) { return s != 1; }))
        return ctx.fail("dynamic slices with steps other than 1 are not "
                        "supported; pass --shape");
      for (int64_t &axis : axes) {
        FailureOr<int64_t> normalized = ctx.normalizeAxis(axis, rank);
        if (failed(normalized))
          return failure();
        axis = *normalized;
      }
      return emitDynamicSlice(ctx, axes, startValue->elements,
                              endValue->elements);
    }
    if (failed(readInput(1, "starts", starts)) ||
        failed(readInput(2, "ends", ends)))
      return failure();
    if (ctx.hasInput(3) && failed(readInput(3, "axes", axes)))
      return failure();
    if (ctx.hasInput(4) && failed(readInput(4, "steps", steps)))
      return failure();
  }
  if (starts.size() != ends.size())
    return ctx.fail("starts and ends differ in length");
  if (axes.empty())
    for (size_t i = 0; i < starts.size(); ++i)
      axes.push_back(i);
  if (steps.empty())
    steps.assign(starts.size(), 1);
  if (axes.size() != starts.size() || steps.size() != starts.size())
    return ctx.fail("starts, ends, axes and steps differ in length");

  SmallVector<AxisSlice> slices;
  for (int64_t d = 0; d < rank; ++d)
    slices.push_back({0, 1, type->getDimSize(d)});
  SmallVector<bool> seen(rank, false);
  for (size_t i = 0; i < starts.size(); ++i) {
    FailureOr<int64_t> axis = ctx.normalizeAxis(axes[i], rank);
    if (failed(axis))
      return failure();
    if (seen[*axis])
      return ctx.fail("axis " + Twine(axes[i]) + " is repeated");
    seen[*axis] = true;
    if (steps[i] == 0)
      return ctx.fail("step is zero");
    slices[*axis] =
        resolveSlice(starts[i], ends[i], steps[i], type->getDimSize(*axis));
  }

  SmallVector<int64_t> shape;
  for (const AxisSlice &s : slices)
    shape.push_back(s.count);
  if (product(shape) == 0) {
    setEmptyOutput(ctx, 0, shape, type->getElementType());
    return success();
  }
  if (const ConstTensor *data = ctx.getConstantInput(0)) {
    ArrayRef<int64_t> inShape = type->getShape();
    ctx.setConstantOutput(0, data->remapped(shape, [&](ArrayRef<int64_t> i) {
      int64_t src = 0;
      for (int64_t d = 0; d < rank; ++d)
        src = src * inShape[d] + slices[d].start + i[d] * slices[d].step;
      return src;
    }));
    return success();
  }
  FailureOr<Value> data = ctx.getInput(0);
  if (failed(data))
    return failure();
  ctx.setOutput(0, emitSlice(ctx, *data, slices));
  return success();
}

//===----------------------------------------------------------------------===//
// Split
//===----------------------------------------------------------------------===//

/// Split(input, split, axis): sizes from the `split` input (opset 13), the
/// attribute (earlier opsets), `num_outputs` (opset 18, the last part
/// smaller) or equal parts.
LogicalResult convertSplit(NodeContext &ctx) {
  FailureOr<RankedTensorType> type = ctx.getInputType(0);
  if (failed(type))
    return failure();
  int64_t rank = type->getRank();
  if (rank == 0)
    return ctx.fail("input must have rank 1 or more");
  FailureOr<int64_t> axis = ctx.normalizeAxis(ctx.getIntAttr("axis", 0), rank);
  if (failed(axis))
    return failure();
  int64_t dim = type->getDimSize(*axis);
  if (ShapedType::isDynamic(dim))
    return ctx.fail("splitting a dynamic dimension is not supported; pass "
                    "--shape");
  int64_t parts = ctx.getNumOutputs();

  SmallVector<int64_t> sizes;
  if (ctx.hasInput(1)) {
    const ConstTensor *split = ctx.getConstantInput(1);
    if (!split)
      return ctx.fail("split input '" + ctx.getInputName(1) +
                      "' is not a constant");
    sizes = *split->getIntValues();
  } else if (auto attr = ctx.getIntsAttr("split")) {
    sizes = *attr;
  } else {
    int64_t chunk = ctx.getAttr("num_outputs")
                        ? (dim + parts - 1) / parts
                        : (dim % parts == 0 ? dim / parts : -1);
    if (chunk < 0)
      return ctx.fail("dimension " + Twine(dim) + " does not split into " +
                      Twine(parts) + " equal parts");
    for (int64_t i = 0, left = dim; i < parts; ++i, left -= chunk)
      sizes.push_back(std::min(chunk, left));
  }
  if (int64_t(sizes.size()) != parts)
    return ctx.fail("split has " + Twine(sizes.size()) + " sizes for " +
                    Twine(parts) + " outputs");
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0)
      return ctx.fail("negative split size " + Twine(s));
    total += s;
  }
  if (total != dim)
    return ctx.fail("split sizes add up to " + Twine(total) +
                    ", not the dimension size " + Twine(dim));

  const ConstTensor *data = ctx.getConstantInput(0);
  Value value;
  if (!data) {
    FailureOr<Value> v = ctx.getInput(0);
    if (failed(v))
      return failure();
    value = *v;
  }
  ArrayRef<int64_t> inShape = type->getShape();
  int64_t offset = 0;
  for (int64_t i = 0; i < parts; ++i) {
    SmallVector<int64_t> start(rank, 0), size(inShape);
    start[*axis] = offset;
    size[*axis] = sizes[i];
    if (product(size) == 0) {
      setEmptyOutput(ctx, i, size, type->getElementType());
    } else if (data) {
      ctx.setConstantOutput(i, data->remapped(size, [&](ArrayRef<int64_t> j) {
        int64_t src = 0;
        for (int64_t d = 0; d < rank; ++d)
          src = src * inShape[d] + start[d] + j[d];
        return src;
      }));
    } else {
      ctx.setOutput(i, ctx.slice(value, start, size));
    }
    offset += sizes[i];
  }
  return success();
}

//===----------------------------------------------------------------------===//
// Concat
//===----------------------------------------------------------------------===//

LogicalResult convertConcat(NodeContext &ctx) {
  if (!ctx.getAttr("axis"))
    return ctx.fail("expects an axis attribute");
  SmallVector<RankedTensorType> types;
  for (unsigned i = 0; i < ctx.getNumInputs(); ++i) {
    FailureOr<RankedTensorType> type = ctx.getInputType(i);
    if (failed(type))
      return failure();
    types.push_back(*type);
  }
  int64_t rank = types.front().getRank();
  if (rank == 0)
    return ctx.fail("inputs must have rank 1 or more");
  FailureOr<int64_t> axis = ctx.normalizeAxis(ctx.getIntAttr("axis", 0), rank);
  if (failed(axis))
    return failure();
  SmallVector<int64_t> shape(types.front().getShape());
  shape[*axis] = 0;
  for (RankedTensorType type : types) {
    bool compatible = type.getRank() == rank &&
                      type.getElementType() == types.front().getElementType();
    for (int64_t d = 0; compatible && d < rank; ++d)
      compatible = d == *axis || type.isDynamicDim(d) ||
                   types.front().isDynamicDim(d) ||
                   type.getDimSize(d) == types.front().getDimSize(d);
    if (!compatible)
      return ctx.fail("input of type " + formatShape(type.getShape()) +
                      " does not concatenate with " +
                      formatShape(types.front().getShape()) + " on axis " +
                      Twine(*axis));
    shape[*axis] =
        type.isDynamicDim(*axis) || ShapedType::isDynamic(shape[*axis])
            ? ShapedType::kDynamic
            : shape[*axis] + type.getDimSize(*axis);
  }
  Type elementType = types.front().getElementType();
  if (product(shape) == 0) {
    setEmptyOutput(ctx, 0, shape, elementType);
    return success();
  }

  if (std::optional<SmallVector<const ConstTensor *>> constants =
          ctx.getConstantInputs()) {
    ctx.setConstantOutput(0, ConstTensor::concat(*constants, *axis));
    return success();
  }
  SmallVector<Value> parts;
  for (unsigned i = 0; i < ctx.getNumInputs(); ++i) {
    if (product(types[i].getShape()) == 0)
      continue;
    FailureOr<Value> part = ctx.getInput(i);
    if (failed(part))
      return failure();
    parts.push_back(*part);
  }
  ctx.setOutput(0, ctx.concat(parts, *axis));
  return success();
}

//===----------------------------------------------------------------------===//
// Trilu
//===----------------------------------------------------------------------===//

/// Trilu(input, k): keeps the upper (or lower) triangle of the last two
/// dimensions from diagonal k; a select against a constant mask.
LogicalResult convertTrilu(NodeContext &ctx) {
  FailureOr<RankedTensorType> type = ctx.getInputType(0);
  if (failed(type))
    return failure();
  int64_t rank = type->getRank();
  if (rank < 2)
    return ctx.fail("input must have rank 2 or more");
  int64_t k = 0;
  if (ctx.hasInput(1)) {
    const ConstTensor *kConst = ctx.getConstantInput(1);
    if (!kConst || kConst->getNumElements() != 1)
      return ctx.fail("k must be a constant scalar");
    k = (*kConst->getIntValues())[0];
  }
  bool upper = ctx.getIntAttr("upper", 1) != 0;
  if (failed(ctx.requireStatic(*type, "input")))
    return failure();
  int64_t rows = type->getDimSize(rank - 2), cols = type->getDimSize(rank - 1);
  SmallVector<int64_t> mask;
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < cols; ++j)
      mask.push_back(upper ? j - i >= k : j - i <= k);
  Type i1 = IntegerType::get(ctx.getContext(), 1);
  ConstTensor maskTensor =
      ConstTensor::fromInts(RankedTensorType::get({rows, cols}, i1), mask);
  if (type->getNumElements() == 0) {
    setEmptyOutput(ctx, 0, type->getShape(), type->getElementType());
    return success();
  }

  ConstTensor zero = ConstTensor::splat(
      RankedTensorType::get({}, type->getElementType()), HostValue::ofInt(0));
  if (const ConstTensor *data = ctx.getConstantInput(0)) {
    if (NodeContext::isFoldable(data->getNumElements())) {
      ctx.setConstantOutput(0, foldElementwise({&maskTensor, data, &zero},
                                               type->getElementType(),
                                               [](ArrayRef<HostValue> v) {
                                                 return v[0].i ? v[1] : v[2];
                                               }));
      return success();
    }
  }
  FailureOr<Value> data = ctx.getInput(0);
  if (failed(data))
    return failure();
  Value maskValue = ctx.constant(maskTensor, "mask");
  FailureOr<Value> result =
      ctx.select(maskValue, *data, ctx.scalarLike(*data, 0.0));
  if (failed(result))
    return failure();
  ctx.setOutput(0, *result);
  return success();
}

} // namespace

void qforge::importer::detail::registerIndexingOps(OpTable &table) {
  table["Gather"] = {convertGather, 2, 2};
  table["GatherElements"] = {convertGatherElements, 2, 2};
  table["Slice"] = {convertSlice, 1, 5};
  table["Split"] = {convertSplit, 1, 2, 1, 1024};
  table["Concat"] = {convertConcat, 1, 1024};
  table["Trilu"] = {convertTrilu, 1, 2};
}
