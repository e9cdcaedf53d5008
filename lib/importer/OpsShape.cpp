//===- OpsShape.cpp - Constants and data movement -------------------------===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// Constant, Reshape, Transpose. Constants stay on the host until an op needs
// them as SSA values, so shape arithmetic folds without emitting IR; a
// Reshape or Transpose of a constant folds into a new constant.
//
//===----------------------------------------------------------------------===//

#include "GraphConverter.h"

#include "mlir/Dialect/Tosa/IR/TosaOps.h"

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
  const ConstTensor *shapeConst = ctx.getConstantInput(1);
  if (!shapeConst)
    return ctx.fail("shape input '" + ctx.getInputName(1) +
                    "' is not a constant");
  FailureOr<SmallVector<int64_t>> requested = shapeConst->getIntValues();
  if (failed(requested) || shapeConst->getType().getRank() != 1)
    return ctx.fail("shape input must be a 1-D integer tensor");

  // The input's type, from the host constant or the SSA value.
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

  // 0 copies the input dimension (unless allowzero), -1 is inferred.
  bool allowZero = ctx.getIntAttr("allowzero", 0) != 0;
  SmallVector<int64_t> shape;
  int64_t inferred = -1, known = 1;
  for (auto [i, d] : llvm::enumerate(*requested)) {
    if (d == 0 && !allowZero) {
      if (int64_t(i) >= type.getRank())
        return ctx.fail("shape dimension " + Twine(i) +
                        " copies a dimension the input lacks");
      d = type.getDimSize(i);
    }
    if (d == -1) {
      if (inferred >= 0)
        return ctx.fail("shape has more than one -1");
      inferred = i;
    } else if (d < 0) {
      return ctx.fail("shape has negative dimension " + Twine(d));
    } else {
      known *= d;
    }
    shape.push_back(d);
  }
  int64_t total = type.getNumElements();
  if (inferred >= 0) {
    if (known == 0 || total % known != 0)
      return ctx.fail("cannot reshape " + formatShape(type.getShape()) +
                      " to " + formatShape(*requested));
    shape[inferred] = total / known;
  } else if (known != total) {
    return ctx.fail("cannot reshape " + formatShape(type.getShape()) + " to " +
                    formatShape(shape));
  }

  if (dataConst) {
    ctx.setConstantOutput(0, dataConst->reshaped(shape));
    return success();
  }
  FailureOr<Value> data = ctx.getInput(0);
  if (failed(data))
    return failure();
  ctx.setOutput(0, ctx.reshape(*data, shape));
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

} // namespace

void qforge::importer::detail::registerShapeOps(OpTable &table) {
  table["Constant"] = {convertConstant, 0, 0};
  table["Reshape"] = {convertReshape, 2, 2};
  table["Transpose"] = {convertTranspose, 1, 1};
}
