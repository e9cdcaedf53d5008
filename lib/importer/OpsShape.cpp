//===- OpsShape.cpp - Constants, shapes and reshaping ---------------------===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// Constant, ConstantOfShape, Shape, Size, Range, Reshape, Flatten, Squeeze,
// Unsqueeze, Transpose, Expand, Tile.
//
// Constants stay on the host until an op needs them as SSA values, so
// torch's shape computations fold without emitting IR: Shape and Size of
// any tensor are constants (every shape is static), ConstantOfShape and
// Range need constant inputs, and a reshaping op of a constant folds into a
// new constant.
//
//===----------------------------------------------------------------------===//

#include "GraphConverter.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tosa/IR/TosaOps.h"

#include <cmath>
#include <cstring>

using namespace mlir;
using namespace qforge::importer::detail;

namespace {

template <typename T>
ConstTensor makeConstTensor(Type elementType, ArrayRef<int64_t> shape,
                            ArrayRef<T> values) {
  std::vector<char> data(values.size() * sizeof(T));
  if (!values.empty())
    std::memcpy(data.data(), values.data(), data.size());
  return ConstTensor(RankedTensorType::get(shape, elementType),
                     std::move(data));
}

LogicalResult reshapeOutput(NodeContext &ctx, ArrayRef<int64_t> shape);

LogicalResult convertConstant(NodeContext &ctx) {
  const onnx::NodeProto &node = ctx.getNode();
  if (node.attribute_size() != 1)
    return ctx.fail("expects exactly one value attribute");
  const onnx::AttributeProto &attr = node.attribute(0);
  OpBuilder &b = ctx.getBuilder();
  const std::string &name = attr.name();
  if (name == "value") {
    std::string reason;
    FailureOr<ConstTensor> value =
        readTensorProto(ctx.getContext(), attr.t(), ctx.getModelDir(), reason);
    if (failed(value))
      return ctx.fail("value " + reason);
    ctx.setConstantOutput(0, *value);
    return success();
  }
  if (name == "value_float") {
    float v = attr.f();
    ctx.setConstantOutput(0, makeConstTensor<float>(b.getF32Type(), {}, v));
    return success();
  }
  if (name == "value_floats") {
    SmallVector<float> v(attr.floats().begin(), attr.floats().end());
    ctx.setConstantOutput(
        0, makeConstTensor<float>(b.getF32Type(), {int64_t(v.size())}, v));
    return success();
  }
  if (name == "value_int") {
    int64_t v = attr.i();
    ctx.setConstantOutput(0, makeConstTensor<int64_t>(b.getI64Type(), {}, v));
    return success();
  }
  if (name == "value_ints") {
    SmallVector<int64_t> v(attr.ints().begin(), attr.ints().end());
    ctx.setConstantOutput(
        0, makeConstTensor<int64_t>(b.getI64Type(), {int64_t(v.size())}, v));
    return success();
  }
  return ctx.fail("attribute '" + name + "' is not supported");
}

LogicalResult convertReshape(NodeContext &ctx) {
  std::optional<ShapeValue> requested = ctx.getShapeInput(1);
  if (!requested)
    return ctx.fail("shape input '" + ctx.getInputName(1) +
                    "' is not a constant");
  if (requested->type.getRank() != 1)
    return ctx.fail("shape input must be a 1-D integer tensor");
  FailureOr<RankedTensorType> type = ctx.getInputType(0);
  if (failed(type))
    return failure();

  // 0 copies the input dimension (unless allowzero), -1 is inferred.
  bool allowZero = ctx.getIntAttr("allowzero", 0) != 0;
  SmallVector<SymDim> dims;
  SmallVector<int64_t> shape;
  int64_t inferred = -1, known = 1;
  bool symbolic = false;
  Value data;
  for (auto [i, d] : llvm::enumerate(requested->elements)) {
    if (d.isKnown() && d.value == 0 && !allowZero) {
      if (int64_t(i) >= type->getRank())
        return ctx.fail("shape dimension " + Twine(i) +
                        " copies a dimension the input lacks");
      if (type->isDynamicDim(i) && !data) {
        FailureOr<Value> value = ctx.getInput(0);
        if (failed(value))
          return failure();
        data = *value;
      }
      d = data && type->isDynamicDim(i) ? SymDim::of(data, i)
                                        : SymDim::known(type->getDimSize(i));
    }
    dims.push_back(d);
    if (!d.isKnown()) {
      symbolic = true;
      shape.push_back(ShapedType::kDynamic);
      continue;
    }
    if (d.value == -1) {
      if (inferred >= 0)
        return ctx.fail("shape has more than one -1");
      inferred = i;
    } else if (d.value < 0) {
      return ctx.fail("shape has negative dimension " + Twine(d.value));
    } else if (llvm::MulOverflow(known, d.value, known)) {
      return ctx.fail("the requested shape has more than 2^63 elements");
    }
    shape.push_back(d.value);
  }

  if (type->hasStaticShape() && !symbolic) {
    int64_t total = type->getNumElements();
    if (inferred >= 0) {
      if (known == 0 || total % known != 0)
        return ctx.fail("cannot reshape " + formatShape(type->getShape()) +
                        " to " + formatShape(shape));
      shape[inferred] = total / known;
    } else if (known != total) {
      return ctx.fail("cannot reshape " + formatShape(type->getShape()) +
                      " to " + formatShape(shape));
    }
    return reshapeOutput(ctx, shape);
  }
  if (!symbolic) {
    // Static target dimensions but for the inferred one.
    if (inferred >= 0)
      shape[inferred] = ShapedType::kDynamic;
    return reshapeOutput(ctx, shape);
  }

  // Dimensions known only at run time: a `tensor.reshape`, with the -1
  // computed from the element count.
  if (!data) {
    FailureOr<Value> value = ctx.getInput(0);
    if (failed(value))
      return failure();
    data = *value;
  }
  if (inferred >= 0) {
    OpBuilder &b = ctx.getBuilder();
    Location loc = ctx.getLoc();
    Value total = ctx.dimValue(SymDim::known(1));
    for (int64_t d = 0; d < type->getRank(); ++d)
      total = arith::MulIOp::create(b, loc, total, ctx.dimValue(data, d));
    Value rest = ctx.dimValue(SymDim::known(1));
    for (auto [i, d] : llvm::enumerate(dims))
      if (int64_t(i) != inferred)
        rest = arith::MulIOp::create(b, loc, rest, ctx.dimValue(d));
    dims[inferred] = SymDim::ofIndex(
        arith::DivUIOp::create(b, loc, total, rest).getResult());
  }
  ctx.setOutput(0, ctx.reshapeTo(data, dims));
  return success();
}

LogicalResult convertTranspose(NodeContext &ctx) {
  const ConstTensor *dataConst = ctx.getConstantInput(0);
  RankedTensorType type;
  if (dataConst) {
    type = dataConst->getType();
  } else {
    FailureOr<TypedValue<RankedTensorType>> data = ctx.getTensorInput(0);
    if (failed(data))
      return failure();
    type = data->getType();
  }
  int64_t rank = type.getRank();
  SmallVector<int64_t> perm;
  if (std::optional<SmallVector<int64_t>> attr = ctx.getIntsAttr("perm")) {
    perm = *attr;
  } else {
    for (int64_t i = rank - 1; i >= 0; --i)
      perm.push_back(i);
  }
  SmallVector<bool> seen(rank, false);
  bool valid = int64_t(perm.size()) == rank;
  for (int64_t p : perm) {
    valid = valid && p >= 0 && p < rank && !seen[p];
    if (valid)
      seen[p] = true;
  }
  if (!valid)
    return ctx.fail("perm is not a permutation of " + Twine(rank) +
                    " dimensions");

  if (dataConst) {
    ctx.setConstantOutput(0, dataConst->transposed(perm));
    return success();
  }
  FailureOr<Value> data = ctx.getInput(0);
  if (failed(data))
    return failure();
  SmallVector<int32_t> perms(perm.begin(), perm.end());
  ctx.setOutput(0, ctx.transpose(*data, perms));
  return success();
}

/// The type of input 0 (a constant or an SSA value).
FailureOr<RankedTensorType> dataType(NodeContext &ctx) {
  return ctx.getInputType(0);
}

/// Binds output 0 to input 0 reshaped to `shape`: folded when constant.
LogicalResult reshapeOutput(NodeContext &ctx, ArrayRef<int64_t> shape) {
  FailureOr<RankedTensorType> type = ctx.getInputType(0);
  if (failed(type))
    return failure();
  if (type->hasStaticShape() && type->getNumElements() == 0) {
    ctx.setConstantOutput(
        0, ConstTensor(RankedTensorType::get(shape, type->getElementType()),
                       std::vector<char>()));
    return success();
  }
  if (const ConstTensor *data = ctx.getConstantInput(0)) {
    ctx.setConstantOutput(0, data->reshaped(shape));
    return success();
  }
  FailureOr<Value> data = ctx.getInput(0);
  if (failed(data))
    return failure();
  ctx.setOutput(0, ctx.reshape(*data, shape));
  return success();
}

/// A 1-D integer constant input `i` as int64 values.
FailureOr<SmallVector<int64_t>> getIntVector(NodeContext &ctx, unsigned i,
                                             StringRef what) {
  const ConstTensor *constant = ctx.getConstantInput(i);
  if (!constant) {
    (void)ctx.fail(what + " input '" + ctx.getInputName(i) +
                   "' is not a constant");
    return failure();
  }
  FailureOr<SmallVector<int64_t>> values = constant->getIntValues();
  if (failed(values) || constant->getType().getRank() > 1) {
    (void)ctx.fail(what + " input must be a 1-D integer tensor");
    return failure();
  }
  return values;
}

LogicalResult convertFlatten(NodeContext &ctx) {
  FailureOr<RankedTensorType> type = dataType(ctx);
  if (failed(type))
    return failure();
  int64_t rank = type->getRank();
  int64_t axis = ctx.getIntAttr("axis", 1);
  if (axis < -rank || axis > rank)
    return ctx.fail("axis " + Twine(axis) + " is out of range for rank " +
                    Twine(rank));
  if (axis < 0)
    axis += rank;
  ArrayRef<int64_t> shape = type->getShape();
  return reshapeOutput(
      ctx, {product(shape.take_front(axis)), product(shape.drop_front(axis))});
}

LogicalResult convertSqueeze(NodeContext &ctx) {
  FailureOr<RankedTensorType> type = dataType(ctx);
  if (failed(type))
    return failure();
  int64_t rank = type->getRank();
  FailureOr<std::optional<SmallVector<int64_t>>> axes =
      ctx.getAxes(1, "axes", rank);
  if (failed(axes))
    return failure();
  SmallVector<bool> drop(rank, false);
  if (*axes) {
    for (int64_t axis : **axes) {
      if (type->getDimSize(axis) != 1 && !type->isDynamicDim(axis))
        return ctx.fail("cannot squeeze dimension " + Twine(axis) +
                        " of size " + Twine(type->getDimSize(axis)));
      drop[axis] = true;
    }
  } else {
    for (int64_t d = 0; d < rank; ++d)
      drop[d] = type->getDimSize(d) == 1;
  }
  SmallVector<int64_t> shape;
  for (int64_t d = 0; d < rank; ++d)
    if (!drop[d])
      shape.push_back(type->getDimSize(d));
  return reshapeOutput(ctx, shape);
}

LogicalResult convertUnsqueeze(NodeContext &ctx) {
  FailureOr<RankedTensorType> type = dataType(ctx);
  if (failed(type))
    return failure();
  const ConstTensor *axesInput = ctx.getConstantInput(1);
  int64_t count = 0;
  if (ctx.hasInput(1)) {
    if (!axesInput)
      return ctx.fail("axes input '" + ctx.getInputName(1) +
                      "' is not a constant");
    count = axesInput->getNumElements();
  } else if (auto attr = ctx.getIntsAttr("axes")) {
    count = attr->size();
  } else {
    return ctx.fail("expects axes");
  }
  int64_t rank = type->getRank() + count;
  FailureOr<std::optional<SmallVector<int64_t>>> axes =
      ctx.getAxes(1, "axes", rank);
  if (failed(axes))
    return failure();
  SmallVector<bool> inserted(rank, false);
  for (int64_t axis : **axes)
    inserted[axis] = true;
  SmallVector<int64_t> shape;
  int64_t next = 0;
  for (int64_t d = 0; d < rank; ++d)
    shape.push_back(inserted[d] ? 1 : type->getDimSize(next++));
  return reshapeOutput(ctx, shape);
}

/// Shape(data, start, end): a constant, or a shape value when `data` has
/// dynamic dimensions.
LogicalResult convertShape(NodeContext &ctx) {
  FailureOr<RankedTensorType> type = dataType(ctx);
  if (failed(type))
    return failure();
  int64_t rank = type->getRank();
  auto clampIndex = [&](int64_t i) {
    if (i < 0)
      i += rank;
    return std::clamp<int64_t>(i, 0, rank);
  };
  int64_t start = clampIndex(ctx.getIntAttr("start", 0));
  int64_t end = clampIndex(ctx.getIntAttr("end", rank));
  Type i64 = IntegerType::get(ctx.getContext(), 64);
  ShapeValue shape{
      RankedTensorType::get({std::max<int64_t>(end - start, 0)}, i64), {}};
  Value data;
  if (!type->hasStaticShape()) {
    FailureOr<Value> value = ctx.getInput(0);
    if (failed(value))
      return failure();
    data = *value;
  }
  for (int64_t d = start; d < end; ++d)
    shape.elements.push_back(data ? SymDim::of(data, d)
                                  : SymDim::known(type->getDimSize(d)));
  ctx.setShapeOutput(0, shape);
  return success();
}

LogicalResult convertSize(NodeContext &ctx) {
  FailureOr<RankedTensorType> type = dataType(ctx);
  if (failed(type))
    return failure();
  if (!type->hasStaticShape())
    return ctx.fail("the size of a tensor with dynamic dimensions is not "
                    "supported; pass --shape");
  Type i64 = IntegerType::get(ctx.getContext(), 64);
  ctx.setConstantOutput(0, ConstTensor::fromInts(RankedTensorType::get({}, i64),
                                                 {type->getNumElements()}));
  return success();
}

/// ConstantOfShape(shape) with `value` (default float 0): a host constant,
/// materialised as a splat.
LogicalResult convertConstantOfShape(NodeContext &ctx) {
  HostValue value = HostValue::ofFloat(0.0);
  Type elementType = Float32Type::get(ctx.getContext());
  if (const onnx::AttributeProto *attr = ctx.getAttr("value")) {
    std::string reason;
    FailureOr<ConstTensor> tensor =
        readTensorProto(ctx.getContext(), attr->t(), ctx.getModelDir(), reason);
    if (failed(tensor))
      return ctx.fail("value " + reason);
    if (tensor->getNumElements() != 1)
      return ctx.fail("value must hold one element");
    elementType = tensor->getElementType();
    value = tensor->getHostValues()[0];
  }
  if (ctx.isSymbolicInput(0)) {
    // A shape known only at run time: an empty tensor of it, filled.
    std::optional<ShapeValue> shape = ctx.getShapeInput(0);
    if (!shape || shape->type.getRank() != 1)
      return ctx.fail("shape must be a 1-D integer tensor");
    SmallVector<int64_t> dims;
    SmallVector<Value> dynamic;
    for (const SymDim &d : shape->elements) {
      if (d.isKnown() && d.value < 0)
        return ctx.fail("shape has negative dimension " + Twine(d.value));
      dims.push_back(d.isKnown() ? d.value : ShapedType::kDynamic);
      if (!d.isKnown())
        dynamic.push_back(ctx.dimValue(d));
    }
    OpBuilder &b = ctx.getBuilder();
    Location loc = ctx.getLoc();
    Value init = tensor::EmptyOp::create(b, loc, dims, elementType, dynamic);
    TypedAttr scalar =
        isa<FloatType>(elementType)
            ? TypedAttr(b.getFloatAttr(elementType, value.asDouble()))
            : TypedAttr(b.getIntegerAttr(
                  elementType, value.isFloat ? int64_t(value.f) : value.i));
    Value fill = arith::ConstantOp::create(b, loc, scalar);
    ctx.setOutput(
        0, linalg::FillOp::create(b, loc, ValueRange{fill}, ValueRange{init})
               .getResult(0));
    return success();
  }
  FailureOr<SmallVector<int64_t>> shape = getIntVector(ctx, 0, "shape");
  if (failed(shape))
    return failure();
  for (int64_t d : *shape)
    if (d < 0)
      return ctx.fail("shape has negative dimension " + Twine(d));
  ctx.setConstantOutput(
      0, ConstTensor::splat(RankedTensorType::get(*shape, elementType), value));
  return success();
}

/// Range(start, limit, delta) of integer scalars known only at run time
/// (shape values, such as a sequence length from Shape): a 1-D iota of
/// max(0, ceil((limit - start) / delta)) elements.
static LogicalResult convertRuntimeRange(NodeContext &ctx) {
  SmallVector<SymDim> scalars;
  Type elementType;
  for (unsigned i = 0; i < 3; ++i) {
    std::optional<ShapeValue> v = ctx.getShapeInput(i);
    if (!v)
      return ctx.fail("input '" + ctx.getInputName(i) +
                      "' is not a constant or a value computed from shapes; "
                      "Range needs one of those");
    if (v->elements.size() != 1)
      return ctx.fail("inputs must be scalars");
    scalars.push_back(v->elements.front());
    if (i == 0)
      elementType = v->type.getElementType();
  }
  if (!scalars[2].isKnown() || scalars[2].value == 0)
    return ctx.fail(scalars[2].isKnown()
                        ? "delta is zero"
                        : "delta must be a constant when start or limit is "
                          "known only at run time");
  OpBuilder &b = ctx.getBuilder();
  Location loc = ctx.getLoc();
  Value start = ctx.dimValue(scalars[0]), limit = ctx.dimValue(scalars[1]);
  int64_t delta = scalars[2].value;
  Value span = arith::SubIOp::create(b, loc, limit, start);
  Value count = arith::CeilDivSIOp::create(
      b, loc, span, arith::ConstantIndexOp::create(b, loc, delta));
  count = arith::MaxSIOp::create(b, loc, count,
                                 arith::ConstantIndexOp::create(b, loc, 0));
  auto type = RankedTensorType::get({ShapedType::kDynamic}, elementType);
  Value init = tensor::EmptyOp::create(b, loc, type.getShape(), elementType,
                                       ValueRange{count});
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{type}, ValueRange{}, ValueRange{init},
      SmallVector<AffineMap>{b.getMultiDimIdentityMap(1)},
      SmallVector<utils::IteratorType>{utils::IteratorType::parallel},
      [&](OpBuilder &nb, Location nl, ValueRange) {
        Value i = linalg::IndexOp::create(nb, nl, 0);
        Value scaled = arith::MulIOp::create(
            nb, nl, i, arith::ConstantIndexOp::create(nb, nl, delta));
        Value v = arith::AddIOp::create(nb, nl, scaled, start);
        linalg::YieldOp::create(
            nb, nl, Value(arith::IndexCastOp::create(nb, nl, elementType, v)));
      });
  ctx.setOutput(0, generic.getResult(0));
  return success();
}

/// Range(start, limit, delta) of constant scalars, folded; of integers known
/// only at run time, an iota.
LogicalResult convertRange(NodeContext &ctx) {
  const ConstTensor *inputs[3];
  for (unsigned i = 0; i < 3; ++i) {
    inputs[i] = ctx.getConstantInput(i);
    if (!inputs[i]) {
      FailureOr<RankedTensorType> type = ctx.getInputType(i);
      if (succeeded(type) && isa<IntegerType>(type->getElementType()) &&
          ctx.isSymbolicInput(i))
        return convertRuntimeRange(ctx);
      return ctx.fail("input '" + ctx.getInputName(i) +
                      "' is not a constant or a value computed from shapes; "
                      "Range needs one of those");
    }
    if (inputs[i]->getNumElements() != 1)
      return ctx.fail("inputs must be scalars");
  }
  Type elementType = inputs[0]->getElementType();
  HostValue start = inputs[0]->getHostValues()[0];
  HostValue limit = inputs[1]->getHostValues()[0];
  HostValue delta = inputs[2]->getHostValues()[0];
  if (delta.asDouble() == 0.0)
    return ctx.fail("delta is zero");
  SmallVector<HostValue> values;
  if (start.isFloat) {
    double n = std::ceil((limit.f - start.f) / delta.f);
    for (int64_t i = 0; i < int64_t(std::max(n, 0.0)); ++i)
      values.push_back(HostValue::ofFloat(start.f + double(i) * delta.f));
  } else {
    int64_t span = limit.i - start.i;
    int64_t n = span / delta.i +
                (span % delta.i != 0 && ((span < 0) == (delta.i < 0)) ? 1 : 0);
    for (int64_t i = 0; i < std::max<int64_t>(n, 0); ++i)
      values.push_back(HostValue::ofInt(start.i + i * delta.i));
  }
  ctx.setConstantOutput(
      0, ConstTensor::fromHostValues(
             RankedTensorType::get({int64_t(values.size())}, elementType),
             values));
  return success();
}

/// Expand(input, shape): bidirectional broadcast. A constant input folds
/// when the result is small or uniform; otherwise `tosa.tile`.
/// Expand where the input or the requested shape has sizes known only at
/// run time: one linalg.generic that reads the input with index 0 along the
/// dimensions it broadcasts (a static 1), and in place along the others
/// (where a run-time size is taken to match, as ONNX requires unless it is 1).
static LogicalResult convertRuntimeExpand(NodeContext &ctx,
                                          RankedTensorType type) {
  std::optional<ShapeValue> requested = ctx.getShapeInput(1);
  if (!requested || requested->type.getRank() != 1)
    return ctx.fail("shape must be a 1-D integer tensor");
  FailureOr<Value> input = ctx.getInput(0);
  if (failed(input))
    return failure();
  int64_t rank = std::max<int64_t>(type.getRank(), requested->elements.size());
  Value x = ctx.expandRank(*input, rank);
  auto xType = cast<RankedTensorType>(x.getType());
  int64_t offset = rank - int64_t(requested->elements.size());
  OpBuilder &b = ctx.getBuilder();
  MLIRContext *mc = ctx.getContext();
  SmallVector<int64_t> shape;
  SmallVector<Value> dynamic;
  SmallVector<AffineExpr> in;
  for (int64_t d = 0; d < rank; ++d) {
    int64_t size = xType.getDimSize(d);
    std::optional<SymDim> q;
    if (d >= offset)
      q = requested->elements[size_t(d - offset)];
    bool broadcasts = size == 1 && q && !(q->isKnown() && q->value == 1);
    in.push_back(broadcasts ? getAffineConstantExpr(0, mc)
                            : getAffineDimExpr(d, mc));
    if (broadcasts) {
      shape.push_back(q->isKnown() ? q->value : ShapedType::kDynamic);
      if (!q->isKnown())
        dynamic.push_back(ctx.dimValue(*q));
    } else if (q && q->isKnown() && q->value != 1 && size >= 0 &&
               size != q->value) {
      return ctx.fail("cannot expand dimension " + Twine(d) + " of size " +
                      Twine(size) + " to " + Twine(q->value));
    } else {
      shape.push_back(size);
      if (ShapedType::isDynamic(size))
        dynamic.push_back(ctx.dimValue(SymDim::of(x, d)));
    }
  }
  Type elementType = type.getElementType();
  Value init =
      tensor::EmptyOp::create(b, ctx.getLoc(), shape, elementType, dynamic);
  SmallVector<AffineMap> maps = {AffineMap::get(rank, 0, in, mc),
                                 b.getMultiDimIdentityMap(rank)};
  SmallVector<utils::IteratorType> iterators(rank,
                                             utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      b, ctx.getLoc(), TypeRange{init.getType()}, ValueRange{x},
      ValueRange{init}, maps, iterators,
      [&](OpBuilder &nb, Location nl, ValueRange args) {
        linalg::YieldOp::create(nb, nl, args[0]);
      });
  ctx.setOutput(0, generic.getResult(0));
  return success();
}

LogicalResult convertExpand(NodeContext &ctx) {
  FailureOr<RankedTensorType> type = dataType(ctx);
  if (failed(type))
    return failure();
  if (!type->hasStaticShape() || ctx.isSymbolicInput(1))
    return convertRuntimeExpand(ctx, *type);
  FailureOr<SmallVector<int64_t>> requested = getIntVector(ctx, 1, "shape");
  if (failed(requested))
    return failure();
  FailureOr<SmallVector<int64_t>> shape =
      ctx.broadcastShapes(type->getShape(), *requested);
  if (failed(shape))
    return failure();
  if (const ConstTensor *data = ctx.getConstantInput(0)) {
    if (NodeContext::isFoldable(*shape) || data->isSplat()) {
      ctx.setConstantOutput(0, data->broadcastTo(*shape));
      return success();
    }
  }
  FailureOr<Value> data = ctx.getInput(0);
  if (failed(data))
    return failure();
  ctx.setOutput(0,
                ctx.broadcastTo(ctx.expandRank(*data, shape->size()), *shape));
  return success();
}

/// Tile(input, repeats).
/// Tile where the input's sizes or the repeats are known only at run time:
/// out[i] = x[i mod size], a linalg.generic that reads x with tensor.extract.
static LogicalResult convertRuntimeTile(NodeContext &ctx,
                                        RankedTensorType type) {
  std::optional<ShapeValue> repeats = ctx.getShapeInput(1);
  int64_t rank = type.getRank();
  if (!repeats || int64_t(repeats->elements.size()) != rank)
    return ctx.fail("repeats must be a 1-D integer tensor of " + Twine(rank) +
                    " elements");
  FailureOr<Value> input = ctx.getInput(0);
  if (failed(input))
    return failure();
  Value x = *input;
  OpBuilder &b = ctx.getBuilder();
  Location loc = ctx.getLoc();
  SmallVector<int64_t> shape;
  SmallVector<Value> dynamic, sizes;
  for (int64_t d = 0; d < rank; ++d) {
    const SymDim &r = repeats->elements[size_t(d)];
    if (r.isKnown() && r.value < 0)
      return ctx.fail("negative repeat " + Twine(r.value));
    int64_t size = type.getDimSize(d);
    Value sizeValue = ctx.dimValue(SymDim::of(x, d));
    sizes.push_back(sizeValue);
    if (r.isKnown() && !ShapedType::isDynamic(size)) {
      shape.push_back(size * r.value);
      continue;
    }
    shape.push_back(ShapedType::kDynamic);
    dynamic.push_back(
        arith::MulIOp::create(b, loc, sizeValue, ctx.dimValue(r)));
  }
  Type elementType = type.getElementType();
  Value init = tensor::EmptyOp::create(b, loc, shape, elementType, dynamic);
  SmallVector<utils::IteratorType> iterators(rank,
                                             utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, ValueRange{}, ValueRange{init},
      SmallVector<AffineMap>{b.getMultiDimIdentityMap(rank)}, iterators,
      [&](OpBuilder &nb, Location nl, ValueRange) {
        SmallVector<Value> at;
        for (int64_t d = 0; d < rank; ++d)
          at.push_back(arith::RemUIOp::create(
              nb, nl, linalg::IndexOp::create(nb, nl, d), sizes[d]));
        linalg::YieldOp::create(
            nb, nl, Value(tensor::ExtractOp::create(nb, nl, x, at)));
      });
  ctx.setOutput(0, generic.getResult(0));
  return success();
}

LogicalResult convertTile(NodeContext &ctx) {
  FailureOr<RankedTensorType> type = dataType(ctx);
  if (failed(type))
    return failure();
  if (type->getRank() > 0 &&
      (!type->hasStaticShape() || ctx.isSymbolicInput(1)))
    return convertRuntimeTile(ctx, *type);
  if (failed(ctx.requireStatic(*type, "input")))
    return failure();
  if (!ctx.getConstantInput(1) && ctx.hasInput(1))
    return ctx.fail("repeats must be a constant or a value computed from "
                    "shapes");
  FailureOr<SmallVector<int64_t>> repeats = getIntVector(ctx, 1, "repeats");
  if (failed(repeats))
    return failure();
  int64_t rank = type->getRank();
  if (int64_t(repeats->size()) != rank)
    return ctx.fail("repeats has " + Twine(repeats->size()) +
                    " elements for rank " + Twine(rank));
  SmallVector<int64_t> shape;
  for (auto [d, r] : llvm::zip_equal(type->getShape(), *repeats)) {
    if (r < 0)
      return ctx.fail("negative repeat " + Twine(r));
    shape.push_back(d * r);
  }
  if (const ConstTensor *data = ctx.getConstantInput(0)) {
    if (NodeContext::isFoldable(shape)) {
      ArrayRef<int64_t> inShape = type->getShape();
      ctx.setConstantOutput(0, data->remapped(shape, [&](ArrayRef<int64_t> i) {
        int64_t src = 0;
        for (int64_t d = 0; d < rank; ++d)
          src = src * inShape[d] + i[d] % inShape[d];
        return src;
      }));
      return success();
    }
  }
  FailureOr<Value> data = ctx.getInput(0);
  if (failed(data))
    return failure();
  if (rank == 0) {
    ctx.setOutput(0, *data);
    return success();
  }
  ctx.setOutput(0, tosa::TileOp::create(ctx.getBuilder(), ctx.getLoc(),
                                        type->clone(shape), *data,
                                        ctx.constShape(*repeats)));
  return success();
}

} // namespace

void qforge::importer::detail::registerShapeOps(OpTable &table) {
  table["Constant"] = {convertConstant, 0, 0};
  table["ConstantOfShape"] = {convertConstantOfShape, 1, 1};
  table["Shape"] = {convertShape, 1, 1};
  table["Size"] = {convertSize, 1, 1};
  table["Range"] = {convertRange, 3, 3};
  table["Reshape"] = {convertReshape, 2, 2};
  table["Flatten"] = {convertFlatten, 1, 1};
  table["Squeeze"] = {convertSqueeze, 1, 2};
  table["Unsqueeze"] = {convertUnsqueeze, 1, 2};
  table["Transpose"] = {convertTranspose, 1, 1};
  table["Expand"] = {convertExpand, 2, 2};
  table["Tile"] = {convertTile, 2, 2};
}
