//===- OpsElementwise.cpp - Elementwise ONNX operators --------------------===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// Add, Sub, Mul, Div (numpy broadcasting), Relu, Identity.
//
//===----------------------------------------------------------------------===//

#include "GraphConverter.h"

#include "mlir/Dialect/Tosa/IR/TosaOps.h"

#include <limits>

using namespace mlir;
using namespace qforge::importer::detail;

namespace {

template <NodeContext::Binary Kind>
LogicalResult convertBinary(NodeContext &ctx) {
  FailureOr<TypedValue<RankedTensorType>> a = ctx.getTensorInput(0);
  if (failed(a))
    return failure();
  FailureOr<TypedValue<RankedTensorType>> b = ctx.getTensorInput(1);
  if (failed(b))
    return failure();
  FailureOr<Value> result = ctx.binary(Kind, *a, *b);
  if (failed(result))
    return failure();
  ctx.setOutput(0, *result);
  return success();
}

LogicalResult convertRelu(NodeContext &ctx) {
  FailureOr<TypedValue<RankedTensorType>> x = ctx.getTensorInput(0);
  if (failed(x))
    return failure();
  RankedTensorType type = x->getType();
  OpBuilder &b = ctx.getBuilder();
  Attribute min, max;
  if (auto floatType = dyn_cast<FloatType>(type.getElementType())) {
    min = b.getFloatAttr(floatType, 0.0);
    max = b.getFloatAttr(floatType, std::numeric_limits<double>::infinity());
  } else if (auto intType = dyn_cast<IntegerType>(type.getElementType())) {
    min = b.getIntegerAttr(intType, 0);
    max = b.getIntegerAttr(intType,
                           llvm::APInt::getSignedMaxValue(intType.getWidth()));
  } else {
    return ctx.fail("unsupported element type");
  }
  ctx.setOutput(0, tosa::ClampOp::create(b, ctx.getLoc(), type, *x, min, max));
  return success();
}

LogicalResult convertIdentity(NodeContext &ctx) {
  return ctx.aliasOutput(0, 0);
}

} // namespace

void qforge::importer::detail::registerElementwiseOps(OpTable &table) {
  using B = NodeContext::Binary;
  table["Add"] = {convertBinary<B::Add>, 2, 2};
  table["Sub"] = {convertBinary<B::Sub>, 2, 2};
  table["Mul"] = {convertBinary<B::Mul>, 2, 2};
  table["Div"] = {convertBinary<B::Div>, 2, 2};
  table["Relu"] = {convertRelu, 1, 1};
  table["Identity"] = {convertIdentity, 1, 1};
}
