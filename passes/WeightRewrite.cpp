//===- WeightRewrite.cpp - Finding and rewriting linear weights -*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "passes/WeightRewrite.h"

#include "mlir/Dialect/Tosa/Utils/ConversionUtils.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/Matchers.h"

using namespace mlir;

namespace qforge {

std::string sanitizeName(StringRef name) {
  std::string out;
  for (char c : name)
    out.push_back(llvm::isAlnum(c) || c == '_' || c == '.' ? c : '_');
  if (out.empty() || llvm::isDigit(out.front()))
    out.insert(out.begin(), '_');
  return out;
}

quant::Scheme toQuantScheme(qf::SchemeAttr s) {
  quant::Scheme q;
  q.bits = s.getBits();
  q.symmetric = s.getSymmetric();
  q.groupSize = s.getGroupSize();
  q.granularity = s.isPerTensor()    ? quant::Granularity::PerTensor
                  : s.isPerChannel() ? quant::Granularity::PerChannel
                                     : quant::Granularity::Group;
  return q;
}

/// Reads the f32 contents of a dense or dense_resource constant.
static std::optional<std::vector<float>> readFloats(Attribute attr) {
  if (auto res = dyn_cast<DenseF32ResourceElementsAttr>(attr)) {
    if (std::optional<ArrayRef<float>> data = res.tryGetAsArrayRef())
      return std::vector<float>(data->begin(), data->end());
    return std::nullopt;
  }
  if (auto dense = dyn_cast<DenseFPElementsAttr>(attr);
      dense && dense.getElementType().isF32()) {
    auto values = dense.getValues<float>();
    return std::vector<float>(values.begin(), values.end());
  }
  return std::nullopt;
}

static std::string layerName(Operation *constOp, tosa::MatMulOp matmul,
                             size_t index) {
  if (auto name = constOp->getAttrOfType<StringAttr>("qf.name"))
    return name.str();
  if (auto loc = dyn_cast<NameLoc>(matmul.getLoc()))
    return loc.getName().str();
  return "linear_" + std::to_string(index);
}

std::vector<LinearWeight> findConstantLinears(func::FuncOp func) {
  std::vector<LinearWeight> linears;
  func.walk([&](tosa::MatMulOp matmul) {
    Value b = matmul.getB();
    if (auto reshape = b.getDefiningOp<tosa::ReshapeOp>())
      b = reshape.getInput1();
    Operation *constOp = b.getDefiningOp();
    Attribute attr;
    if (!constOp || !matchPattern(b, m_Constant(&attr)))
      return;
    auto type = cast<ShapedType>(b.getType());
    // A weight is [K, N], or [1, K, N] feeding the batch-1 matmul directly.
    if (!type.hasStaticShape() || type.getRank() < 2 ||
        type.getNumElements() != type.getDimSize(type.getRank() - 2) *
                                     type.getDimSize(type.getRank() - 1))
      return;
    std::optional<std::vector<float>> data = readFloats(attr);
    if (!data)
      return;
    LinearWeight lw;
    lw.matmul = matmul;
    lw.cols = type.getDimSize(type.getRank() - 2);
    lw.rows = type.getDimSize(type.getRank() - 1);
    lw.name = layerName(constOp, matmul, linears.size());
    lw.weight.resize(data->size());
    for (int64_t k = 0; k < lw.cols; ++k)
      for (int64_t n = 0; n < lw.rows; ++n)
        lw.weight[n * lw.cols + k] = (*data)[k * lw.rows + n];
    linears.push_back(std::move(lw));
  });
  return linears;
}

template <typename T>
Value createResourceConst(OpBuilder &b, Location loc, StringRef name,
                          ArrayRef<T> data, ArrayRef<int64_t> shape,
                          Type elementType) {
  auto type = RankedTensorType::get(shape, elementType);
  auto blob = HeapAsmResourceBlob::allocateAndCopyInferAlign(data);
  auto attr =
      DenseResourceElementsAttr::get(type, sanitizeName(name), std::move(blob));
  auto op = tosa::ConstOp::create(b, loc, type, attr);
  op->setAttr("qf.name", b.getStringAttr(name));
  return op;
}

template Value createResourceConst<uint32_t>(OpBuilder &, Location, StringRef,
                                             ArrayRef<uint32_t>,
                                             ArrayRef<int64_t>, Type);
template Value createResourceConst<float>(OpBuilder &, Location, StringRef,
                                          ArrayRef<float>, ArrayRef<int64_t>,
                                          Type);
template Value createResourceConst<uint8_t>(OpBuilder &, Location, StringRef,
                                            ArrayRef<uint8_t>,
                                            ArrayRef<int64_t>, Type);
template Value createResourceConst<int32_t>(OpBuilder &, Location, StringRef,
                                            ArrayRef<int32_t>,
                                            ArrayRef<int64_t>, Type);

qf::DequantizeOp replaceWithDequantized(OpBuilder &b, LinearWeight &linear,
                                        const QuantizedWeight &q) {
  tosa::MatMulOp matmul = linear.matmul;
  Location loc = matmul.getLoc();
  b.setInsertionPoint(matmul);
  Type f32 = b.getF32Type();
  auto weightType = RankedTensorType::get({linear.rows, linear.cols}, f32);
  auto dq = qf::DequantizeOp::create(b, loc, weightType, q.codes, q.scales,
                                     q.zeroPoints, q.lut, q.scheme);
  dq->setAttr("qf.layer", b.getStringAttr(linear.name));
  auto transposedType = RankedTensorType::get({linear.cols, linear.rows}, f32);
  Value transposed = tosa::TransposeOp::create(b, loc, transposedType, dq,
                                               b.getDenseI32ArrayAttr({1, 0}));
  auto type3d = RankedTensorType::get({1, linear.cols, linear.rows}, f32);
  ImplicitLocOpBuilder ib(loc, b);
  Value shape = tosa::getTosaConstShape(ib, type3d.getShape());
  Value weight3d = tosa::ReshapeOp::create(b, loc, type3d, transposed, shape);

  Value old = matmul.getB();
  matmul.getBMutable().assign(weight3d);
  // Erase the float weight (and its reshape) when nothing else uses it.
  while (Operation *def = old.getDefiningOp()) {
    if (!def->use_empty())
      break;
    Value next = isa<tosa::ReshapeOp>(def) ? def->getOperand(0) : Value();
    def->erase();
    if (!next)
      break;
    old = next;
  }
  return dq;
}

} // namespace qforge
