//===- GraphConverter.cpp - ONNX graph to graph IR ------------------------===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// The value map, the per-node context with its TOSA emission helpers, and
// the walk that builds `func.func @main`.
//
//===----------------------------------------------------------------------===//

#include "GraphConverter.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tosa/IR/TosaOps.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/Verifier.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/Path.h"

using namespace mlir;
using namespace qforge::importer::detail;

/// Tensors with at most this many elements become inline `dense` constants
/// unless they are weights (initializers and what folds from them).
static constexpr int64_t kMaxInlineElements = 16;

/// Computed host results (arithmetic, comparisons, casts) up to this many
/// elements fold at import; larger ones are emitted as IR. Rearrangements
/// of constants (reshape, transpose, slice, gather, concat) always fold.
static constexpr int64_t kMaxFoldElements = int64_t(1) << 20;

static StringAttr getNameAttr(MLIRContext *ctx, StringRef name) {
  return StringAttr::get(ctx, name);
}

//===----------------------------------------------------------------------===//
// Operator table
//===----------------------------------------------------------------------===//

const OpTable &qforge::importer::detail::getOpTable() {
  static const OpTable table = [] {
    OpTable t;
    registerElementwiseOps(t);
    registerLinearOps(t);
    registerShapeOps(t);
    registerIndexingOps(t);
    registerReductionOps(t);
    return t;
  }();
  return table;
}

//===----------------------------------------------------------------------===//
// NodeContext
//===----------------------------------------------------------------------===//

NodeContext::NodeContext(GraphConverter &graph, const onnx::NodeProto &node,
                         StringRef displayName, Location loc, int64_t opset)
    : graph(graph), node(node), displayName(displayName), loc(loc),
      opset(opset) {}

OpBuilder &NodeContext::getBuilder() { return graph.getBuilder(); }

StringRef NodeContext::getModelDir() const { return graph.getModelDir(); }

LogicalResult NodeContext::fail(const Twine &message) {
  return graph.fail("node '" + displayName + "' (" + node.op_type() +
                    "): " + message);
}

LogicalResult NodeContext::requireStatic(RankedTensorType type,
                                         const Twine &what) {
  if (type.hasStaticShape())
    return success();
  return fail(what + " of shape " + formatShape(type.getShape()) +
              " is not supported with dynamic dimensions; pass --shape");
}

bool NodeContext::hasInput(unsigned i) const {
  return i < unsigned(node.input_size()) && !node.input(i).empty();
}

FailureOr<Value> NodeContext::getInput(unsigned i) {
  if (!hasInput(i)) {
    (void)fail("input " + Twine(i) + " is missing");
    return failure();
  }
  return graph.lookup(node.input(i), "node '" + displayName + "' (" +
                                         node.op_type() + "): input");
}

FailureOr<TypedValue<RankedTensorType>>
NodeContext::getTensorInput(unsigned i) {
  FailureOr<Value> value = getInput(i);
  if (failed(value))
    return failure();
  auto type = dyn_cast<RankedTensorType>(value->getType());
  if (!type) {
    (void)fail("input '" + node.input(i) + "' has no ranked shape");
    return failure();
  }
  return cast<TypedValue<RankedTensorType>>(*value);
}

const ConstTensor *NodeContext::getConstantInput(unsigned i) {
  if (!hasInput(i))
    return nullptr;
  return graph.lookupConstant(node.input(i));
}

FailureOr<RankedTensorType> NodeContext::getInputType(unsigned i) {
  if (const ConstTensor *constant = getConstantInput(i))
    return constant->getType();
  if (hasInput(i))
    if (const ShapeValue *shape = graph.lookupShape(node.input(i)))
      return shape->type;
  FailureOr<TypedValue<RankedTensorType>> value = getTensorInput(i);
  if (failed(value))
    return failure();
  return value->getType();
}

std::optional<SmallVector<const ConstTensor *>>
NodeContext::getConstantInputs() {
  SmallVector<const ConstTensor *> out;
  for (unsigned i = 0, e = getNumInputs(); i < e; ++i) {
    if (!hasInput(i))
      continue;
    const ConstTensor *constant = getConstantInput(i);
    if (!constant)
      return std::nullopt;
    out.push_back(constant);
  }
  return out;
}

std::optional<ShapeValue> NodeContext::getShapeInput(unsigned i) {
  if (!hasInput(i))
    return std::nullopt;
  if (const ShapeValue *shape = graph.lookupShape(node.input(i)))
    return *shape;
  const ConstTensor *constant = getConstantInput(i);
  if (!constant || constant->getType().getRank() > 1)
    return std::nullopt;
  FailureOr<SmallVector<int64_t>> ints = constant->getIntValues();
  if (failed(ints) || constant->getElementType().isInteger(1))
    return std::nullopt;
  ShapeValue value{constant->getType(), {}};
  for (int64_t v : *ints)
    value.elements.push_back(SymDim::known(v));
  return value;
}

bool NodeContext::isSymbolicInput(unsigned i) {
  return hasInput(i) && graph.lookupShape(node.input(i));
}

bool NodeContext::isFoldable(int64_t numElements) {
  return numElements <= kMaxFoldElements;
}

bool NodeContext::isFoldable(ArrayRef<int64_t> shape) {
  int64_t n = product(shape);
  return !ShapedType::isDynamic(n) && isFoldable(n);
}

void NodeContext::setOutput(unsigned i, Value value) {
  if (i < unsigned(node.output_size()) && !node.output(i).empty())
    graph.bind(node.output(i), value);
}

void NodeContext::setConstantOutput(unsigned i, ConstTensor value) {
  if (i < unsigned(node.output_size()) && !node.output(i).empty())
    graph.bindConstant(node.output(i), std::move(value));
}

void NodeContext::setShapeOutput(unsigned i, ShapeValue value) {
  if (i >= unsigned(node.output_size()) || node.output(i).empty())
    return;
  if (!value.isKnown()) {
    graph.bindShape(node.output(i), std::move(value));
    return;
  }
  SmallVector<int64_t> ints;
  for (const SymDim &d : value.elements)
    ints.push_back(d.value);
  graph.bindConstant(node.output(i), ConstTensor::fromInts(value.type, ints));
}

LogicalResult NodeContext::aliasOutput(unsigned i, unsigned j) {
  if (i >= unsigned(node.output_size()) || node.output(i).empty())
    return success();
  return graph.alias(node.output(i), node.input(j),
                     "node '" + displayName + "' (" + node.op_type() +
                         "): input");
}

const onnx::AttributeProto *NodeContext::getAttr(StringRef name) const {
  for (const onnx::AttributeProto &attr : node.attribute())
    if (attr.name() == name)
      return &attr;
  return nullptr;
}

int64_t NodeContext::getIntAttr(StringRef name, int64_t defaultValue) const {
  const onnx::AttributeProto *attr = getAttr(name);
  return attr && attr->has_i() ? attr->i() : defaultValue;
}

float NodeContext::getFloatAttr(StringRef name, float defaultValue) const {
  const onnx::AttributeProto *attr = getAttr(name);
  return attr && attr->has_f() ? attr->f() : defaultValue;
}

std::optional<SmallVector<int64_t>>
NodeContext::getIntsAttr(StringRef name) const {
  const onnx::AttributeProto *attr = getAttr(name);
  if (!attr)
    return std::nullopt;
  return SmallVector<int64_t>(attr->ints().begin(), attr->ints().end());
}

std::string NodeContext::getStringAttr(StringRef name,
                                       StringRef defaultValue) const {
  const onnx::AttributeProto *attr = getAttr(name);
  return attr && attr->has_s() ? attr->s() : defaultValue.str();
}

FailureOr<int64_t> NodeContext::normalizeAxis(int64_t axis, int64_t rank,
                                              StringRef what) {
  if (axis < -rank || axis >= rank) {
    (void)fail(what + " " + Twine(axis) + " is out of range for rank " +
               Twine(rank));
    return failure();
  }
  return axis < 0 ? axis + rank : axis;
}

FailureOr<std::optional<SmallVector<int64_t>>>
NodeContext::getAxes(unsigned inputIndex, StringRef attrName, int64_t rank) {
  SmallVector<int64_t> axes;
  if (hasInput(inputIndex)) {
    const ConstTensor *constant = getConstantInput(inputIndex);
    if (!constant) {
      (void)fail("axes input '" + getInputName(inputIndex) +
                 "' is not a constant");
      return failure();
    }
    FailureOr<SmallVector<int64_t>> values = constant->getIntValues();
    if (failed(values)) {
      (void)fail("axes input must be an integer tensor");
      return failure();
    }
    axes = *values;
  } else if (std::optional<SmallVector<int64_t>> attr = getIntsAttr(attrName)) {
    axes = *attr;
  } else {
    return std::optional<SmallVector<int64_t>>();
  }
  SmallVector<bool> seen(rank, false);
  for (int64_t &axis : axes) {
    FailureOr<int64_t> normalized = normalizeAxis(axis, rank);
    if (failed(normalized))
      return failure();
    if (seen[*normalized]) {
      (void)fail("axis " + Twine(axis) + " is repeated");
      return failure();
    }
    seen[*normalized] = true;
    axis = *normalized;
  }
  return std::optional<SmallVector<int64_t>>(axes);
}

Value NodeContext::constShape(ArrayRef<int64_t> dims) {
  OpBuilder &b = getBuilder();
  int64_t rank = dims.size();
  auto attr = DenseIntElementsAttr::get(
      RankedTensorType::get({rank}, b.getIndexType()), dims);
  return tosa::ConstShapeOp::create(
      b, loc, tosa::shapeType::get(b.getContext(), rank), attr);
}

Value NodeContext::splat(Type elementType, double value,
                         ArrayRef<int64_t> shape) {
  OpBuilder &b = getBuilder();
  auto type = RankedTensorType::get(shape, elementType);
  Attribute element;
  if (auto floatType = dyn_cast<FloatType>(elementType))
    element = b.getFloatAttr(floatType, value);
  else
    element = b.getIntegerAttr(elementType, int64_t(value));
  return tosa::ConstOp::create(b, loc, type,
                               DenseElementsAttr::get(type, element));
}

Value NodeContext::constant(const ConstTensor &value, StringRef name) {
  return graph.materialize(value, name, loc);
}

SymDim SymDim::of(Value tensor, int64_t d) {
  int64_t size = cast<RankedTensorType>(tensor.getType()).getDimSize(d);
  if (!ShapedType::isDynamic(size))
    return known(size);
  return {0, tensor, d};
}

Value NodeContext::dimValue(const SymDim &dim) {
  if (dim.isKnown())
    return arith::ConstantIndexOp::create(getBuilder(), loc, dim.value);
  if (dim.dim < 0)
    return dim.source;
  return tensor::DimOp::create(getBuilder(), loc, dim.source, dim.dim);
}

Value NodeContext::reshape(Value value, ArrayRef<int64_t> shape) {
  auto type = cast<RankedTensorType>(value.getType());
  if (type.getShape() == shape)
    return value;
  if (countDynamic(shape) <= 1) {
    SmallVector<int64_t> dims(shape);
    for (int64_t &d : dims)
      if (ShapedType::isDynamic(d))
        d = -1;
    return tosa::ReshapeOp::create(getBuilder(), loc, type.clone(shape), value,
                                   constShape(dims));
  }
  // The dynamic dimensions of `shape` are those of `value`, in order.
  SmallVector<int64_t> sourceDynamic;
  for (int64_t d = 0; d < type.getRank(); ++d)
    if (type.isDynamicDim(d))
      sourceDynamic.push_back(d);
  if (sourceDynamic.size() != size_t(countDynamic(shape))) {
    // The sizes of the result are not those of the operand: callers that
    // split a dynamic dimension must name the sizes (reshapeTo). Fail the
    // node with the shapes, and hand back a placeholder of the asked type.
    if (deferred.empty())
      deferred = "cannot reshape " + formatShape(type.getShape()) + " to " +
                 formatShape(shape) +
                 ": more than one dynamic dimension would have to be "
                 "inferred; pass --shape";
    SmallVector<Value> sizes;
    for (int64_t d : shape)
      if (ShapedType::isDynamic(d))
        sizes.push_back(arith::ConstantIndexOp::create(getBuilder(), loc, 1));
    return tensor::EmptyOp::create(getBuilder(), loc, shape,
                                   type.getElementType(), sizes);
  }
  SmallVector<SymDim> dims;
  unsigned next = 0;
  for (int64_t d : shape)
    dims.push_back(ShapedType::isDynamic(d)
                       ? SymDim::of(value, sourceDynamic[next++])
                       : SymDim::known(d));
  return reshapeTo(value, dims);
}

Value NodeContext::reshapeTo(Value value, ArrayRef<SymDim> dims) {
  auto type = cast<RankedTensorType>(value.getType());
  OpBuilder &b = getBuilder();
  SmallVector<int64_t> shape;
  SmallVector<Value> sizes;
  for (const SymDim &d : dims) {
    shape.push_back(d.isKnown() ? d.value : ShapedType::kDynamic);
    sizes.push_back(dimValue(d));
  }
  Value shapeTensor = tensor::FromElementsOp::create(
      b, loc, RankedTensorType::get({int64_t(dims.size())}, b.getIndexType()),
      sizes);
  return tensor::ReshapeOp::create(b, loc, type.clone(shape), value,
                                   shapeTensor);
}

Value NodeContext::expandRank(Value value, int64_t rank) {
  auto type = cast<RankedTensorType>(value.getType());
  if (type.getRank() >= rank)
    return value;
  SmallVector<int64_t> shape(rank - type.getRank(), 1);
  llvm::append_range(shape, type.getShape());
  return reshape(value, shape);
}

Value NodeContext::broadcastTo(Value value, ArrayRef<int64_t> shape) {
  auto type = cast<RankedTensorType>(value.getType());
  if (type.getShape() == shape)
    return value;
  SmallVector<int64_t> multiples;
  for (auto [have, want] : llvm::zip_equal(type.getShape(), shape))
    multiples.push_back(have == want ? 1 : want);
  return tosa::TileOp::create(getBuilder(), loc, type.clone(shape), value,
                              constShape(multiples));
}

Value NodeContext::transpose(Value value, ArrayRef<int32_t> perms) {
  auto type = cast<RankedTensorType>(value.getType());
  SmallVector<int64_t> shape;
  for (int32_t p : perms)
    shape.push_back(type.getDimSize(p));
  return tosa::TransposeOp::create(getBuilder(), loc, type.clone(shape), value,
                                   perms);
}

Value NodeContext::zeroPoint(Type elementType) {
  return splat(elementType, 0.0, {1});
}

Value NodeContext::matmul3D(Value a, Value b) {
  auto aType = cast<RankedTensorType>(a.getType());
  auto bType = cast<RankedTensorType>(b.getType());
  auto type = aType.clone(
      {aType.getDimSize(0), aType.getDimSize(1), bType.getDimSize(2)});
  Value azp = zeroPoint(aType.getElementType());
  Value bzp = aType.getElementType() == bType.getElementType()
                  ? azp
                  : zeroPoint(bType.getElementType());
  return tosa::MatMulOp::create(getBuilder(), loc, type, a, b, azp, bzp);
}

Value NodeContext::castTo(Value value, Type elementType) {
  auto type = cast<RankedTensorType>(value.getType());
  if (type.getElementType() == elementType)
    return value;
  return tosa::CastOp::create(getBuilder(), loc, type.clone(elementType),
                              value);
}

Value NodeContext::negate(Value value) {
  auto type = cast<RankedTensorType>(value.getType());
  Value zp = zeroPoint(type.getElementType());
  return tosa::NegateOp::create(getBuilder(), loc, type, value, zp, zp);
}

Value NodeContext::scalarLike(Value like, double value) {
  auto type = cast<RankedTensorType>(like.getType());
  return splat(type.getElementType(), value,
               SmallVector<int64_t>(type.getRank(), 1));
}

Value NodeContext::reduce(Reduce kind, Value value, int64_t axis) {
  auto type = cast<RankedTensorType>(value.getType());
  SmallVector<int64_t> shape(type.getShape());
  shape[axis] = 1;
  auto resultType = type.clone(shape);
  OpBuilder &b = getBuilder();
  IntegerAttr axisAttr = b.getI32IntegerAttr(axis);
  switch (kind) {
  case Reduce::Sum:
    return tosa::ReduceSumOp::create(b, loc, resultType, value, axisAttr);
  case Reduce::Max:
    return tosa::ReduceMaxOp::create(b, loc, resultType, value, axisAttr);
  case Reduce::Min:
    return tosa::ReduceMinOp::create(b, loc, resultType, value, axisAttr);
  case Reduce::Prod:
    return tosa::ReduceProductOp::create(b, loc, resultType, value, axisAttr);
  case Reduce::All:
    return tosa::ReduceAllOp::create(b, loc, resultType, value, axisAttr);
  case Reduce::Any:
    return tosa::ReduceAnyOp::create(b, loc, resultType, value, axisAttr);
  }
  llvm_unreachable("unknown reduction");
}

Value NodeContext::slice(Value value, ArrayRef<int64_t> start,
                         ArrayRef<int64_t> size) {
  auto type = cast<RankedTensorType>(value.getType());
  if (type.getShape() == size &&
      llvm::all_of(start, [](int64_t s) { return s == 0; }))
    return value;
  if (!type.hasStaticShape() || countDynamic(size) > 0) {
    // Dynamic sizes take the rest of their dimension.
    SmallVector<OpFoldResult> offsets, sizes;
    SmallVector<OpFoldResult> strides(type.getRank(),
                                      getBuilder().getIndexAttr(1));
    for (auto [d, s] : llvm::enumerate(size)) {
      offsets.push_back(getBuilder().getIndexAttr(start[d]));
      if (!ShapedType::isDynamic(s)) {
        sizes.push_back(getBuilder().getIndexAttr(s));
        continue;
      }
      Value rest = dimValue(value, d);
      if (start[d] != 0)
        rest = arith::SubIOp::create(
            getBuilder(), loc, rest,
            arith::ConstantIndexOp::create(getBuilder(), loc, start[d]));
      sizes.push_back(rest);
    }
    return tensor::ExtractSliceOp::create(getBuilder(), loc, value, offsets,
                                          sizes, strides);
  }
  return tosa::SliceOp::create(getBuilder(), loc, type.clone(size), value,
                               constShape(start), constShape(size));
}

Value NodeContext::concat(ValueRange parts, int64_t axis) {
  if (parts.size() == 1)
    return parts.front();
  auto type = cast<RankedTensorType>(parts.front().getType());
  SmallVector<int64_t> shape(type.getShape());
  shape[axis] = 0;
  for (Value part : parts) {
    auto partType = cast<RankedTensorType>(part.getType());
    if (partType.isDynamicDim(axis) || ShapedType::isDynamic(shape[axis]))
      shape[axis] = ShapedType::kDynamic;
    else
      shape[axis] += partType.getDimSize(axis);
    // A dynamic dimension of one part is the static one of another.
    for (int64_t d = 0; d < partType.getRank(); ++d)
      if (d != axis && ShapedType::isDynamic(shape[d]))
        shape[d] = partType.getDimSize(d);
  }
  return tosa::ConcatOp::create(getBuilder(), loc, type.clone(shape), parts,
                                getBuilder().getI32IntegerAttr(axis));
}

FailureOr<Value> NodeContext::select(Value cond, Value onTrue, Value onFalse) {
  auto condType = cast<RankedTensorType>(cond.getType());
  auto trueType = cast<RankedTensorType>(onTrue.getType());
  auto falseType = cast<RankedTensorType>(onFalse.getType());
  if (trueType.getElementType() != falseType.getElementType()) {
    (void)fail("the two branches have different element types");
    return failure();
  }
  FailureOr<SmallVector<int64_t>> shape = broadcastShapeList(
      {condType.getShape(), trueType.getShape(), falseType.getShape()});
  if (failed(shape)) {
    (void)fail("shapes " + formatShape(condType.getShape()) + ", " +
               formatShape(trueType.getShape()) + " and " +
               formatShape(falseType.getShape()) + " do not broadcast");
    return failure();
  }
  int64_t rank = shape->size();
  return Value(tosa::SelectOp::create(
      getBuilder(), loc, trueType.clone(*shape), expandRank(cond, rank),
      expandRank(onTrue, rank), expandRank(onFalse, rank)));
}

Value NodeContext::elementwiseGeneric(
    ValueRange inputs, ArrayRef<int64_t> shape, Type elementType,
    function_ref<Value(OpBuilder &, Location, ValueRange)> body) {
  OpBuilder &b = getBuilder();
  int64_t rank = shape.size();
  SmallVector<Value> operands;
  SmallVector<AffineMap> maps;
  for (Value input : inputs) {
    Value expanded = expandRank(input, rank);
    auto type = cast<RankedTensorType>(expanded.getType());
    SmallVector<AffineExpr> exprs;
    for (int64_t d = 0; d < rank; ++d)
      exprs.push_back(type.getDimSize(d) == 1 && shape[d] != 1
                          ? getAffineConstantExpr(0, b.getContext())
                          : getAffineDimExpr(d, b.getContext()));
    maps.push_back(AffineMap::get(rank, 0, exprs, b.getContext()));
    operands.push_back(expanded);
  }
  maps.push_back(b.getMultiDimIdentityMap(rank));
  SmallVector<Value> dynamicSizes;
  for (int64_t d = 0; d < rank; ++d) {
    if (!ShapedType::isDynamic(shape[d]))
      continue;
    for (Value operand : operands)
      if (cast<RankedTensorType>(operand.getType()).isDynamicDim(d)) {
        dynamicSizes.push_back(dimValue(operand, d));
        break;
      }
  }
  Value init =
      tensor::EmptyOp::create(b, loc, shape, elementType, dynamicSizes);
  SmallVector<utils::IteratorType> iterators(rank,
                                             utils::IteratorType::parallel);
  auto generic = linalg::GenericOp::create(
      b, loc, TypeRange{init.getType()}, operands, ValueRange{init}, maps,
      iterators, [&](OpBuilder &nested, Location nestedLoc, ValueRange args) {
        Value result = body(nested, nestedLoc, args.drop_back());
        linalg::YieldOp::create(nested, nestedLoc, result);
      });
  return generic.getResult(0);
}

FailureOr<SmallVector<int64_t>>
NodeContext::broadcastShapes(ArrayRef<int64_t> a, ArrayRef<int64_t> b) {
  FailureOr<SmallVector<int64_t>> out = broadcastShapeList({a, b});
  if (failed(out))
    (void)fail("shapes " + formatShape(a) + " and " + formatShape(b) +
               " do not broadcast");
  return out;
}

FailureOr<Value> NodeContext::binary(Binary kind, Value a, Value b) {
  // Comparisons with the operands swapped.
  if (kind == Binary::Less)
    return binary(Binary::Greater, b, a);
  if (kind == Binary::LessEqual)
    return binary(Binary::GreaterEqual, b, a);
  auto aType = cast<RankedTensorType>(a.getType());
  auto bType = cast<RankedTensorType>(b.getType());
  if (aType.getElementType() != bType.getElementType()) {
    std::string as, bs;
    llvm::raw_string_ostream(as) << aType.getElementType();
    llvm::raw_string_ostream(bs) << bType.getElementType();
    (void)fail("operand element types differ: " + as + " and " + bs);
    return failure();
  }
  FailureOr<SmallVector<int64_t>> shape =
      broadcastShapes(aType.getShape(), bType.getShape());
  if (failed(shape))
    return failure();
  int64_t rank = shape->size();
  a = expandRank(a, rank);
  b = expandRank(b, rank);
  auto type = aType.clone(*shape);
  auto boolType =
      RankedTensorType::get(*shape, IntegerType::get(getContext(), 1));
  Type elementType = aType.getElementType();
  bool isFloat = isa<FloatType>(elementType);
  bool isBool = elementType.isInteger(1);
  OpBuilder &builder = getBuilder();
  auto requireBool = [&]() -> LogicalResult {
    if (isBool)
      return success();
    return fail("expects bool operands");
  };
  auto requireNumber = [&]() -> LogicalResult {
    if (!isBool)
      return success();
    return fail("expects numeric operands, not bool");
  };
  switch (kind) {
  case Binary::Add:
    if (failed(requireNumber()))
      return failure();
    return Value(tosa::AddOp::create(builder, loc, type, a, b));
  case Binary::Sub:
    if (failed(requireNumber()))
      return failure();
    return Value(tosa::SubOp::create(builder, loc, type, a, b));
  case Binary::Mul: {
    if (failed(requireNumber()))
      return failure();
    auto shiftType = RankedTensorType::get({1}, builder.getI8Type());
    Value shift = tosa::ConstOp::create(
        builder, loc, shiftType,
        DenseElementsAttr::get(shiftType, builder.getI8IntegerAttr(0)));
    return Value(tosa::MulOp::create(builder, loc, type, a, b, shift));
  }
  case Binary::Div: {
    if (failed(requireNumber()))
      return failure();
    if (isFloat) {
      // TOSA has no float division: a * (1 / b).
      Value reciprocal = tosa::ReciprocalOp::create(
          builder, loc, cast<RankedTensorType>(b.getType()), b);
      return binary(Binary::Mul, a, reciprocal);
    }
    if (elementType.isSignlessInteger(32))
      return Value(tosa::IntDivOp::create(builder, loc, type, a, b));
    // Other widths: truncating division in a linalg.generic.
    return elementwiseGeneric(
        {a, b}, *shape, elementType,
        [](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          return arith::DivSIOp::create(nb, nl, args[0], args[1]);
        });
  }
  case Binary::Max:
    if (failed(requireNumber()))
      return failure();
    return Value(tosa::MaximumOp::create(builder, loc, type, a, b));
  case Binary::Min:
    if (failed(requireNumber()))
      return failure();
    return Value(tosa::MinimumOp::create(builder, loc, type, a, b));
  case Binary::Pow:
    if (!isFloat) {
      (void)fail("expects float operands");
      return failure();
    }
    return Value(tosa::PowOp::create(builder, loc, type, a, b));
  case Binary::Mod:
  case Binary::FMod: {
    if (failed(requireNumber()))
      return failure();
    bool fmod = kind == Binary::FMod;
    if (isFloat && !fmod) {
      (void)fail("float operands need fmod = 1");
      return failure();
    }
    return elementwiseGeneric(
        {a, b}, *shape, elementType,
        [&](OpBuilder &nb, Location nl, ValueRange args) -> Value {
          if (isFloat)
            return arith::RemFOp::create(nb, nl, args[0], args[1]);
          Value rem = arith::RemSIOp::create(nb, nl, args[0], args[1]);
          if (fmod)
            return rem;
          // Python's modulo takes the sign of the divisor.
          Value zero = arith::ConstantOp::create(
              nb, nl, elementType, nb.getIntegerAttr(elementType, 0));
          Value nonZero = arith::CmpIOp::create(
              nb, nl, arith::CmpIPredicate::ne, rem, zero);
          Value remNeg = arith::CmpIOp::create(
              nb, nl, arith::CmpIPredicate::slt, rem, zero);
          Value divNeg = arith::CmpIOp::create(
              nb, nl, arith::CmpIPredicate::slt, args[1], zero);
          Value signsDiffer = arith::XOrIOp::create(nb, nl, remNeg, divNeg);
          Value adjust = arith::AndIOp::create(nb, nl, nonZero, signsDiffer);
          Value adjusted = arith::AddIOp::create(nb, nl, rem, args[1]);
          return arith::SelectOp::create(nb, nl, adjust, adjusted, rem);
        });
  }
  case Binary::Equal:
    return Value(tosa::EqualOp::create(builder, loc, boolType, a, b));
  case Binary::Greater:
    if (failed(requireNumber()))
      return failure();
    return Value(tosa::GreaterOp::create(builder, loc, boolType, a, b));
  case Binary::GreaterEqual:
    if (failed(requireNumber()))
      return failure();
    return Value(tosa::GreaterEqualOp::create(builder, loc, boolType, a, b));
  case Binary::And:
    if (failed(requireBool()))
      return failure();
    return Value(tosa::LogicalAndOp::create(builder, loc, type, a, b));
  case Binary::Or:
    if (failed(requireBool()))
      return failure();
    return Value(tosa::LogicalOrOp::create(builder, loc, type, a, b));
  case Binary::Xor:
    if (failed(requireBool()))
      return failure();
    return Value(tosa::LogicalXorOp::create(builder, loc, type, a, b));
  case Binary::Less:
  case Binary::LessEqual:
    break;
  }
  llvm_unreachable("unknown binary kind");
}

//===----------------------------------------------------------------------===//
// GraphConverter
//===----------------------------------------------------------------------===//

GraphConverter::GraphConverter(MLIRContext &ctx, onnx::ModelProto &model,
                               StringRef path, int64_t opset,
                               std::string &error)
    : ctx(ctx), model(model), path(path.str()),
      modelDir(llvm::sys::path::parent_path(path).str()), opset(opset),
      error(error), builder(&ctx),
      fileLoc(FileLineColLoc::get(&ctx, path, 0, 0)) {}

LogicalResult GraphConverter::fail(const Twine &message) {
  error = (path + ": " + message).str();
  return failure();
}

GraphConverter::ValueEntry *GraphConverter::find(StringRef name) {
  auto it = values.find(name);
  if (it == values.end())
    return nullptr;
  if (!it->second.aliasOf.empty())
    return find(it->second.aliasOf);
  return &it->second;
}

FailureOr<Value> GraphConverter::lookup(StringRef name, const Twine &who) {
  ValueEntry *entry = find(name);
  if (!entry) {
    (void)fail(who + " '" + name + "' is not defined");
    return failure();
  }
  if (!entry->value) {
    // Named after the tensor that holds the contents (an alias's target).
    auto it = values.find(name);
    while (!it->second.aliasOf.empty())
      it = values.find(it->second.aliasOf);
    StringRef key = it->first();
    Location loc = NameLoc::get(getNameAttr(&ctx, key), fileLoc);
    entry->value = entry->shape ? materialize(*entry->shape, loc)
                                : materialize(*entry->constant, key, loc);
  }
  return entry->value;
}

const ConstTensor *GraphConverter::lookupConstant(StringRef name) {
  ValueEntry *entry = find(name);
  if (!entry || !entry->constant)
    return nullptr;
  return &*entry->constant;
}

LogicalResult GraphConverter::alias(StringRef name, StringRef existing,
                                    const Twine &who) {
  ValueEntry *entry = find(existing);
  if (!entry)
    return fail(who + " '" + existing + "' is not defined");
  if (entry->value && !entry->constant && !entry->shape) {
    bind(name, entry->value);
    return success();
  }
  auto it = values.find(existing);
  while (!it->second.aliasOf.empty())
    it = values.find(it->second.aliasOf);
  ValueEntry aliasEntry;
  aliasEntry.aliasOf = it->first().str();
  values[name] = std::move(aliasEntry);
  return success();
}

void GraphConverter::bind(StringRef name, Value value) {
  values[name] = ValueEntry{value, std::nullopt, {}, std::nullopt};
}

void GraphConverter::bindConstant(StringRef name, ConstTensor value) {
  values[name] = ValueEntry{Value(), std::move(value), {}, std::nullopt};
}

void GraphConverter::bindShape(StringRef name, ShapeValue value) {
  values[name] = ValueEntry{Value(), std::nullopt, {}, std::move(value)};
}

const ShapeValue *GraphConverter::lookupShape(StringRef name) {
  ValueEntry *entry = find(name);
  if (!entry || !entry->shape)
    return nullptr;
  return &*entry->shape;
}

Value GraphConverter::materialize(const ShapeValue &value, Location loc) {
  SmallVector<Value> elements;
  Type elementType = value.type.getElementType();
  for (const SymDim &d : value.elements) {
    if (d.isKnown()) {
      elements.push_back(arith::ConstantOp::create(
          builder, loc, builder.getIntegerAttr(elementType, d.value)));
      continue;
    }
    Value size =
        d.dim < 0
            ? d.source
            : tensor::DimOp::create(builder, loc, d.source, d.dim).getResult();
    elements.push_back(
        arith::IndexCastOp::create(builder, loc, elementType, size));
  }
  return tensor::FromElementsOp::create(builder, loc, value.type, elements);
}

/// A resource blob holding `value`'s bytes. Bytes the tensor owns are shared
/// with the blob, which keeps them alive, so that a weight is held once
/// however large; a view into the ONNX model (which does not outlive the
/// import) is copied.
static AsmResourceBlob makeBlob(const ConstTensor &value) {
  size_t align = getElementByteWidth(value.getElementType());
  ArrayRef<char> bytes = value.getBytes();
  std::shared_ptr<const std::vector<char>> storage = value.getStorage();
  if (!storage || reinterpret_cast<uintptr_t>(bytes.data()) % align != 0)
    return HeapAsmResourceBlob::allocateAndCopyWithAlign(
        bytes, align, /*dataIsMutable=*/false);
  return AsmResourceBlob(
      bytes, align,
      [storage = std::move(storage)](void *, size_t, size_t) mutable {
        storage.reset();
      },
      /*dataIsMutable=*/false);
}

Value GraphConverter::materialize(const ConstTensor &value, StringRef name,
                                  Location loc) {
  RankedTensorType type = value.getType();
  // TOSA tensors have no zero-sized dimensions; an empty tensor has no
  // contents either.
  if (type.getNumElements() == 0)
    return tensor::EmptyOp::create(builder, loc, type.getShape(),
                                   type.getElementType());
  int64_t maxInline = value.isWeight() ? 1 : kMaxInlineElements;
  ElementsAttr attr;
  bool isBool = type.getElementType().isInteger(1);
  if (isBool) {
    // Booleans are bit-packed in DenseElementsAttr; never a blob.
    SmallVector<int64_t> ints = *value.getIntValues();
    SmallVector<bool> bits;
    for (int64_t v : ints)
      bits.push_back(v != 0);
    attr = DenseElementsAttr::get(type, bits);
  } else if (value.getNumElements() <= maxInline) {
    attr = DenseElementsAttr::getFromRawBuffer(type, value.getBytes());
  } else if (!value.isWeight() && value.isSplat()) {
    // A filled tensor (ConstantOfShape, Expand of a scalar) stays a splat.
    int64_t width = getElementByteWidth(type.getElementType());
    attr = DenseElementsAttr::getFromRawBuffer(
        type, value.getBytes().take_front(width));
  } else {
    attr = DenseResourceElementsAttr::get(type, sanitizeResourceName(name),
                                          makeBlob(value));
  }
  auto op = tosa::ConstOp::create(builder, loc, type, attr);
  op->setAttr("qf.name", getNameAttr(&ctx, name));
  return op;
}

LogicalResult GraphConverter::declareInitializers() {
  if (model.graph().sparse_initializer_size() > 0)
    return fail("sparse initializer '" +
                model.graph().sparse_initializer(0).values().name() +
                "' is not supported");
  for (const onnx::TensorProto &init : model.graph().initializer()) {
    std::string reason;
    FailureOr<ConstTensor> tensor =
        readTensorProto(&ctx, init, modelDir, reason);
    if (failed(tensor))
      return fail("initializer '" + init.name() + "' " + reason);
    tensor->setWeight(true);
    values[init.name()] =
        ValueEntry{Value(), std::move(*tensor), {}, std::nullopt};
  }
  return success();
}

/// The shape of a tensor type proto; symbolic and unknown dimensions are
/// dynamic.
static SmallVector<int64_t> getShape(const onnx::TypeProto &type) {
  SmallVector<int64_t> shape;
  for (const auto &dim : type.tensor_type().shape().dim())
    shape.push_back(dim.has_dim_value() && dim.dim_value() >= 0
                        ? dim.dim_value()
                        : ShapedType::kDynamic);
  return shape;
}

LogicalResult
GraphConverter::buildSignature(SmallVectorImpl<Type> &types,
                               SmallVectorImpl<std::string> &names) {
  for (const onnx::ValueInfoProto &input : model.graph().input()) {
    if (values.count(input.name()))
      continue; // an initializer listed as input (IR version < 4)
    const onnx::TypeProto &type = input.type();
    if (!type.has_tensor_type())
      return fail("input '" + input.name() + "' is not a tensor");
    Type elementType = getElementType(&ctx, type.tensor_type().elem_type());
    if (!elementType)
      return fail("input '" + input.name() + "' has unsupported element type " +
                  getONNXTypeName(type.tensor_type().elem_type()));
    if (!type.tensor_type().has_shape())
      return fail("input '" + input.name() + "' has no shape; pass --shape " +
                  input.name() + "=D0xD1x...");
    // Symbolic dimensions stay dynamic unless --shape fixed them.
    SmallVector<int64_t> shape = getShape(type);
    int64_t bytes = getElementByteWidth(elementType);
    for (int64_t d : shape)
      if (!ShapedType::isDynamic(d) && llvm::MulOverflow(bytes, d, bytes))
        return fail("input '" + input.name() + "' declares " +
                    formatShape(shape) + ", more than 2^63 bytes");
    types.push_back(RankedTensorType::get(shape, elementType));
    names.push_back(input.name());
  }
  return success();
}

LogicalResult GraphConverter::checkInferredShapes(const onnx::NodeProto &node,
                                                  const Twine &who) {
  for (const std::string &output : node.output()) {
    if (output.empty())
      continue;
    auto inferred = inferredTypes.find(output);
    ValueEntry *bound = find(output);
    if (inferred == inferredTypes.end() || !bound)
      continue;
    const onnx::TypeProto &proto = *inferred->second;
    if (!proto.has_tensor_type() || !proto.tensor_type().has_shape())
      continue;
    SmallVector<int64_t> expected = getShape(proto);
    ArrayRef<int64_t> shape =
        bound->constant ? bound->constant->getShape()
        : bound->shape
            ? bound->shape->type.getShape()
            : cast<RankedTensorType>(bound->value.getType()).getShape();
    // Only dimensions static on both sides are compared.
    bool matches = shape.size() == expected.size();
    for (size_t d = 0; matches && d < shape.size(); ++d)
      matches = ShapedType::isDynamic(shape[d]) ||
                ShapedType::isDynamic(expected[d]) || shape[d] == expected[d];
    if (!matches)
      return fail(who + ": output '" + output + "' has shape " +
                  formatShape(shape) + " but the model declares " +
                  formatShape(expected));
  }
  return success();
}

/// "2" or "2 to 3".
static std::string formatArity(unsigned min, unsigned max) {
  return min == max ? std::to_string(min)
                    : std::to_string(min) + " to " + std::to_string(max);
}

std::string qforge::importer::detail::nodeName(const onnx::NodeProto &node,
                                               int index) {
  return node.name().empty() ? "#" + std::to_string(index) : node.name();
}

std::string qforge::importer::detail::describeNode(const onnx::NodeProto &node,
                                                   int index) {
  return "node '" + nodeName(node, index) + "' (" + node.op_type() + ")";
}

LogicalResult GraphConverter::convertNode(const onnx::NodeProto &node,
                                          int index) {
  std::string name = nodeName(node, index);
  std::string who = describeNode(node, index);
  if (!node.domain().empty() && node.domain() != "ai.onnx")
    return fail(who + ": unsupported operator (domain '" + node.domain() +
                "')");
  const OpTable &table = getOpTable();
  auto it = table.find(node.op_type());
  if (it == table.end())
    return fail(who + ": unsupported operator");
  const OpConverter &entry = it->second;
  unsigned numInputs = node.input_size(), numOutputs = node.output_size();
  if (numInputs < entry.minInputs || numInputs > entry.maxInputs)
    return fail(who + ": expects " +
                formatArity(entry.minInputs, entry.maxInputs) +
                " inputs, got " + Twine(numInputs));
  if (numOutputs < entry.minOutputs || numOutputs > entry.maxOutputs)
    return fail(who + ": expects " +
                formatArity(entry.minOutputs, entry.maxOutputs) +
                " outputs, got " + Twine(numOutputs));

  // Forms older than opset 7 (per-op broadcast flags, consumed_inputs).
  for (const onnx::AttributeProto &attr : node.attribute())
    if (attr.name() == "broadcast" || attr.name() == "consumed_inputs")
      return fail(who + ": attribute '" + attr.name() +
                  "' of opsets before 7 is not supported");

  Location loc = NameLoc::get(getNameAttr(&ctx, name), fileLoc);
  Block *block = builder.getInsertionBlock();
  Operation *last = block->empty() ? nullptr : &block->back();

  NodeContext context(*this, node, name, loc, opset);
  bool handled = false;
  for (unsigned i = 0; !handled && i < numInputs; ++i)
    handled = context.isSymbolicInput(i);
  if (handled && failed(convertShapeValueOp(context, handled)))
    return failure();
  if (!handled && failed(entry.convert(context)))
    return failure();
  if (!context.deferredError().empty())
    return fail(who + ": " + context.deferredError());

  for (const std::string &output : node.output())
    if (!output.empty() && !values.count(output))
      return fail(who + ": output '" + output + "' was not produced");

  // Verify what this node created, so an error names the node.
  std::string diagnostic;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &diag) {
    if (diagnostic.empty() && diag.getSeverity() == DiagnosticSeverity::Error)
      diagnostic = diag.str();
    return success();
  });
  auto begin = last ? std::next(last->getIterator()) : block->begin();
  for (Operation &op : llvm::make_range(begin, block->end())) {
    for (Type type : op.getResultTypes()) {
      auto tensor = dyn_cast<RankedTensorType>(type);
      if (!tensor)
        continue;
      int64_t bytes = getElementByteWidth(tensor.getElementType());
      for (int64_t d : tensor.getShape())
        if (!ShapedType::isDynamic(d) && llvm::MulOverflow(bytes, d, bytes))
          return fail(who + ": a result of shape " +
                      formatShape(tensor.getShape()) +
                      " would exceed 2^63 bytes");
    }
    if (failed(verify(&op)))
      return fail(who + ": invalid IR: " + diagnostic);
  }
  return checkInferredShapes(node, who);
}

OwningOpRef<ModuleOp> GraphConverter::convert() {
  const onnx::GraphProto &graph = model.graph();
  for (const onnx::ValueInfoProto &info : graph.value_info())
    inferredTypes[info.name()] = &info.type();
  for (const onnx::ValueInfoProto &info : graph.output())
    inferredTypes[info.name()] = &info.type();

  if (failed(declareInitializers()))
    return nullptr;
  SmallVector<Type> inputTypes;
  SmallVector<std::string> inputNames;
  if (failed(buildSignature(inputTypes, inputNames)))
    return nullptr;

  OwningOpRef<ModuleOp> module = ModuleOp::create(fileLoc);
  builder.setInsertionPointToEnd(module->getBody());
  auto func = func::FuncOp::create(builder, fileLoc, "main",
                                   builder.getFunctionType(inputTypes, {}));
  Block *body = func.addEntryBlock();
  for (auto [i, name] : llvm::enumerate(inputNames)) {
    BlockArgument arg = body->getArgument(i);
    arg.setLoc(NameLoc::get(getNameAttr(&ctx, name), fileLoc));
    bind(name, arg);
  }
  builder.setInsertionPointToEnd(body);

  for (auto [i, node] : llvm::enumerate(graph.node()))
    if (failed(convertNode(node, i)))
      return nullptr;

  SmallVector<Value> results;
  SmallVector<Type> resultTypes;
  for (const onnx::ValueInfoProto &output : graph.output()) {
    FailureOr<Value> value = lookup(output.name(), "graph output");
    if (failed(value))
      return nullptr;
    results.push_back(*value);
    resultTypes.push_back(value->getType());
  }
  func::ReturnOp::create(builder, fileLoc, results);
  func.setFunctionType(builder.getFunctionType(inputTypes, resultTypes));
  for (auto [i, name] : llvm::enumerate(inputNames))
    func.setArgAttr(i, "qf.name", getNameAttr(&ctx, name));
  for (auto [i, output] : llvm::enumerate(graph.output()))
    func.setResultAttr(i, "qf.name", getNameAttr(&ctx, output.name()));

  // Weights become named arguments of the compiled entry, beside the graph
  // inputs and outputs: keep every `qf.name` unique among them.
  llvm::StringSet<> used;
  for (const std::string &name : inputNames)
    used.insert(name);
  for (const onnx::ValueInfoProto &output : graph.output())
    used.insert(output.name());
  func.walk([&](tosa::ConstOp op) {
    auto name = op->getAttrOfType<StringAttr>("qf.name");
    if (!name || used.insert(name.getValue()).second)
      return;
    for (int suffix = 1;; ++suffix) {
      std::string candidate = (name.getValue() + "." + Twine(suffix)).str();
      if (used.insert(candidate).second) {
        op->setAttr("qf.name", getNameAttr(&ctx, candidate));
        return;
      }
    }
  });

  std::string diagnostic;
  ScopedDiagnosticHandler handler(&ctx, [&](Diagnostic &diag) {
    if (diagnostic.empty() && diag.getSeverity() == DiagnosticSeverity::Error)
      diagnostic = diag.str();
    return success();
  });
  if (failed(verify(*module))) {
    (void)fail("invalid IR: " + diagnostic);
    return nullptr;
  }
  return module;
}
