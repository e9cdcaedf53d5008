//===- ShapeValues.cpp - Shape arithmetic on the host ---------------------===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// Shape of a tensor with dynamic dimensions is a shape value: a 0-D or 1-D
// integer tensor known element by element, each element an integer or a
// dimension of an SSA tensor. The rearrangements torch emits around it
// (Gather of one dimension, Unsqueeze, Squeeze, Reshape, Concat, Slice,
// Cast, Identity) and arithmetic with neutral or known operands stay shape
// values, so that consumers (Slice bounds, Reshape targets) see which
// dimension they use. Anything else materialises the shape value as a
// `tensor.from_elements` of `tensor.dim`s and converts as usual.
//
//===----------------------------------------------------------------------===//

#include "GraphConverter.h"

using namespace mlir;
using namespace qforge::importer::detail;

namespace {

/// The shape values of every given input; nullopt when one is not.
std::optional<SmallVector<ShapeValue>> getShapeInputs(NodeContext &ctx) {
  SmallVector<ShapeValue> inputs;
  for (unsigned i = 0, e = ctx.getNumInputs(); i < e; ++i) {
    if (!ctx.hasInput(i))
      continue;
    std::optional<ShapeValue> value = ctx.getShapeInput(i);
    if (!value)
      return std::nullopt;
    inputs.push_back(std::move(*value));
  }
  return inputs;
}

/// `value` with its elements under a 0-D or 1-D type of `rank`.
std::optional<ShapeValue> withRank(const ShapeValue &value, int64_t rank) {
  int64_t n = value.elements.size();
  if (rank > 1 || (rank == 0 && n != 1))
    return std::nullopt;
  SmallVector<int64_t> shape;
  if (rank == 1)
    shape.push_back(n);
  return ShapeValue{RankedTensorType(value.type).clone(shape), value.elements};
}

/// The rank Unsqueeze, Squeeze or Reshape gives a shape value, when it
/// stays 0-D or 1-D.
std::optional<int64_t> reshapedRank(NodeContext &ctx, const ShapeValue &in) {
  StringRef op = ctx.getOpType();
  int64_t rank = in.type.getRank();
  if (op == "Unsqueeze")
    return rank == 0 ? std::optional<int64_t>(1) : std::nullopt;
  if (op == "Squeeze")
    return rank == 1 && in.elements.size() == 1 ? std::optional<int64_t>(0)
                                                : std::nullopt;
  // Reshape to a constant shape of at most one dimension.
  const ConstTensor *shape = ctx.getConstantInput(1);
  if (!shape || shape->getNumElements() > 1)
    return std::nullopt;
  return shape->getNumElements();
}

/// Elements of a 1-D shape value selected by constant Slice parameters.
std::optional<SmallVector<SymDim>> sliceElements(NodeContext &ctx,
                                                 const ShapeValue &in) {
  auto param = [&](unsigned i) -> std::optional<int64_t> {
    const ConstTensor *c = ctx.getConstantInput(i);
    if (!c || c->getNumElements() != 1)
      return std::nullopt;
    FailureOr<SmallVector<int64_t>> v = c->getIntValues();
    return succeeded(v) ? std::optional<int64_t>((*v)[0]) : std::nullopt;
  };
  if (ctx.getOpset() < 10 || in.type.getRank() != 1)
    return std::nullopt;
  std::optional<int64_t> start = param(1), end = param(2);
  std::optional<int64_t> step = ctx.hasInput(4) ? param(4) : 1;
  if (ctx.hasInput(3) && param(3) != std::optional<int64_t>(0) &&
      param(3) != std::optional<int64_t>(-1))
    return std::nullopt;
  if (!start || !end || !step || *step == 0)
    return std::nullopt;
  int64_t n = in.elements.size();
  auto clampIndex = [&](int64_t i, int64_t lo, int64_t hi) {
    return std::clamp<int64_t>(i < 0 ? i + n : i, lo, hi);
  };
  SmallVector<SymDim> out;
  if (*step > 0) {
    for (int64_t i = clampIndex(*start, 0, n), e = clampIndex(*end, 0, n);
         i < e; i += *step)
      out.push_back(in.elements[i]);
  } else {
    for (int64_t i = clampIndex(*start, 0, n - 1),
                 e = clampIndex(*end, -1, n - 1);
         i > e; i += *step)
      out.push_back(in.elements[i]);
  }
  return out;
}

/// Add, Sub, Mul or Div of two elements, when the result is known or one
/// operand is neutral.
std::optional<SymDim> arithmetic(StringRef op, const SymDim &a,
                                 const SymDim &b) {
  if (a.isKnown() && b.isKnown()) {
    if (op == "Add")
      return SymDim::known(a.value + b.value);
    if (op == "Sub")
      return SymDim::known(a.value - b.value);
    if (op == "Mul")
      return SymDim::known(a.value * b.value);
    if (b.value == 0)
      return std::nullopt;
    // Floor division, like torch's shape arithmetic on sizes.
    int64_t q = a.value / b.value;
    if ((a.value % b.value != 0) && ((a.value < 0) != (b.value < 0)))
      --q;
    return SymDim::known(q);
  }
  bool bNeutral =
      b.isKnown() && b.value == (op == "Add" || op == "Sub" ? 0 : 1);
  if (bNeutral)
    return a;
  bool aNeutral = a.isKnown() && a.value == (op == "Add" ? 0 : 1);
  if (aNeutral && (op == "Add" || op == "Mul"))
    return b;
  return std::nullopt;
}

} // namespace

LogicalResult qforge::importer::detail::convertShapeValueOp(NodeContext &ctx,
                                                            bool &handled) {
  handled = false;
  StringRef op = ctx.getOpType();
  std::optional<SmallVector<ShapeValue>> inputs = getShapeInputs(ctx);
  if (!inputs || inputs->empty())
    return success();
  const ShapeValue &in = inputs->front();

  if (op == "Identity") {
    ctx.setShapeOutput(0, in);
  } else if (op == "Cast") {
    Type type = getElementType(ctx.getContext(), ctx.getIntAttr("to", 0));
    if (!type || !isa<IntegerType>(type) || type.isInteger(1))
      return success();
    ctx.setShapeOutput(0, {RankedTensorType(in.type).clone(type), in.elements});
  } else if (op == "Gather") {
    if (in.type.getRank() != 1 || ctx.getIntAttr("axis", 0) != 0 ||
        !ctx.getConstantInput(1))
      return success();
    const ShapeValue &indices = (*inputs)[1];
    int64_t n = in.elements.size();
    ShapeValue out{RankedTensorType(in.type).clone(indices.type.getShape()),
                   {}};
    for (const SymDim &i : indices.elements) {
      if (i.value < -n || i.value >= n)
        return ctx.fail("index " + Twine(i.value) +
                        " is out of range for axis of size " + Twine(n));
      out.elements.push_back(in.elements[i.value < 0 ? i.value + n : i.value]);
    }
    ctx.setShapeOutput(0, out);
  } else if (op == "Unsqueeze" || op == "Squeeze" || op == "Reshape") {
    std::optional<int64_t> rank = reshapedRank(ctx, in);
    std::optional<ShapeValue> out = rank ? withRank(in, *rank) : std::nullopt;
    if (!out)
      return success();
    ctx.setShapeOutput(0, *out);
  } else if (op == "Concat") {
    ShapeValue out{in.type, {}};
    for (const ShapeValue &part : *inputs) {
      if (part.type.getRank() != 1)
        return success();
      llvm::append_range(out.elements, part.elements);
    }
    out.type = RankedTensorType(in.type).clone({int64_t(out.elements.size())});
    ctx.setShapeOutput(0, out);
  } else if (op == "Slice") {
    std::optional<SmallVector<SymDim>> elements = sliceElements(ctx, in);
    if (!elements)
      return success();
    ctx.setShapeOutput(
        0, {RankedTensorType(in.type).clone({int64_t(elements->size())}),
            *elements});
  } else if (op == "Add" || op == "Sub" || op == "Mul" || op == "Div") {
    const ShapeValue &rhs = (*inputs)[1];
    if (in.type.getElementType() != rhs.type.getElementType())
      return success();
    // Equal shapes, or one side with a single element.
    const ShapeValue &wide =
        in.elements.size() >= rhs.elements.size() ? in : rhs;
    size_t n = wide.elements.size();
    if (in.elements.size() != n && in.elements.size() != 1)
      return success();
    if (rhs.elements.size() != n && rhs.elements.size() != 1)
      return success();
    ShapeValue out{wide.type, {}};
    for (size_t i = 0; i < n; ++i) {
      std::optional<SymDim> r =
          arithmetic(op, in.elements[in.elements.size() == 1 ? 0 : i],
                     rhs.elements[rhs.elements.size() == 1 ? 0 : i]);
      if (!r)
        return success();
      out.elements.push_back(*r);
    }
    if (in.type.getRank() != rhs.type.getRank())
      out.type = in.type.getRank() > rhs.type.getRank() ? in.type : rhs.type;
    ctx.setShapeOutput(0, out);
  } else {
    return success();
  }
  handled = true;
  return success();
}
