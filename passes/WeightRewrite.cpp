//===- WeightRewrite.cpp - Finding and rewriting linear weights -*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "passes/WeightRewrite.h"
#include "qforge/Quant/Hessian.h"

#include "mlir/Dialect/Tosa/Utils/ConversionUtils.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/Matchers.h"

#include <type_traits>

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
  q.granularity = s.isPerTensor()    ? quant::Granularity::PerTensor
                  : s.isPerChannel() ? quant::Granularity::PerChannel
                                     : quant::Granularity::Group;
  q.groupSize =
      q.granularity == quant::Granularity::Group ? s.getGroupSize() : 0;
  return q;
}

/// The f32 contents of a constant weight attribute, without a copy when it
/// is a resource blob; nullopt for other element types or a missing blob.
static std::optional<ArrayRef<float>> viewFloats(Attribute attr) {
  if (auto res = dyn_cast<DenseF32ResourceElementsAttr>(attr))
    return res.tryGetAsArrayRef();
  return std::nullopt;
}

static bool isFloatWeight(Attribute attr) {
  if (viewFloats(attr))
    return true;
  auto dense = dyn_cast<DenseFPElementsAttr>(attr);
  return dense && dense.getElementType().isF32();
}

std::vector<float> LinearWeight::load() const {
  std::vector<float> weight(size_t(rows) * size_t(cols));
  auto transposeFrom = [&](auto &&values) {
    auto it = values.begin();
    for (int64_t k = 0; k < cols; ++k)
      for (int64_t n = 0; n < rows; ++n, ++it)
        weight[n * cols + k] = *it;
  };
  if (std::optional<ArrayRef<float>> data = viewFloats(constant))
    transposeFrom(*data);
  else
    transposeFrom(cast<DenseFPElementsAttr>(constant).getValues<float>());
  return weight;
}

static std::string layerName(Operation *constOp, tosa::MatMulOp matmul,
                             size_t index) {
  if (auto name = constOp->getAttrOfType<StringAttr>("qf.name"))
    return name.str();
  if (auto loc = dyn_cast<NameLoc>(matmul.getLoc()))
    return loc.getName().str();
  return "linear_" + std::to_string(index);
}

std::vector<tosa::MatMulOp> LinearWeight::uses() const {
  std::vector<tosa::MatMulOp> all{matmul};
  all.insert(all.end(), sharers.begin(), sharers.end());
  return all;
}

/// The contents of a resource or dense constant whose element type is T
/// (f32 for float, a signless integer of T's width otherwise); empty for any
/// other attribute or element type.
template <typename T> static std::vector<T> readArray(Attribute attr) {
  auto elements = dyn_cast_or_null<ElementsAttr>(attr);
  if (!elements)
    return {};
  Type et = elements.getElementType();
  if (std::is_floating_point_v<T> ? !et.isF32()
                                  : !et.isSignlessInteger(8 * sizeof(T)))
    return {};
  if (auto res = dyn_cast<DenseResourceElementsAttr>(attr)) {
    if (AsmResourceBlob *blob = res.getRawHandle().getBlob()) {
      ArrayRef<T> data = blob->template getDataAs<T>();
      return std::vector<T>(data.begin(), data.end());
    }
    return {};
  }
  if (auto dense = dyn_cast<DenseElementsAttr>(attr)) {
    auto values = dense.getValues<T>();
    return std::vector<T>(values.begin(), values.end());
  }
  return {};
}

/// The CSR matrix of a `qf.outliers` dictionary (nullopt when malformed).
static std::optional<quant::SparseRows>
readOutliers(DictionaryAttr dict, int64_t rows, int64_t cols) {
  quant::SparseRows s;
  s.rows = rows;
  s.cols = cols;
  s.rowPtr = readArray<int32_t>(dict.get("row_ptr"));
  s.colIdx = readArray<int32_t>(dict.get("col_idx"));
  s.values = readArray<float>(dict.get("values"));
  if (s.rowPtr.size() != size_t(rows) + 1 || s.rowPtr.front() != 0 ||
      size_t(s.rowPtr.back()) != s.values.size() ||
      s.colIdx.size() != s.values.size())
    return std::nullopt;
  for (int32_t c : s.colIdx)
    if (c < 0 || c >= cols)
      return std::nullopt;
  return s;
}

DictionaryAttr makeOutliersAttr(Builder &b, StringRef name,
                                const quant::SparseRows &s) {
  auto blob = [&](StringRef field, auto data, Type elementType) {
    auto type = RankedTensorType::get({int64_t(data.size())}, elementType);
    return b.getNamedAttr(field,
                          DenseResourceElementsAttr::get(
                              type, sanitizeName((name + "." + field).str()),
                              HeapAsmResourceBlob::allocateAndCopyInferAlign(
                                  ArrayRef(data.data(), data.size()))));
  };
  NamedAttribute entries[] = {blob("col_idx", s.colIdx, b.getI32Type()),
                              blob("row_ptr", s.rowPtr, b.getI32Type()),
                              blob("values", s.values, b.getF32Type())};
  return b.getDictionaryAttr(entries);
}

std::vector<LinearWeight> findConstantLinears(func::FuncOp func) {
  std::vector<LinearWeight> linears;
  llvm::DenseMap<Operation *, size_t> byConstant;
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
    if (!isFloatWeight(attr))
      return;
    if (auto it = byConstant.find(constOp); it != byConstant.end()) {
      linears[it->second].sharers.push_back(matmul);
      return;
    }
    byConstant[constOp] = linears.size();
    LinearWeight lw;
    lw.matmul = matmul;
    lw.cols = type.getDimSize(type.getRank() - 2);
    lw.rows = type.getDimSize(type.getRank() - 1);
    lw.name = layerName(constOp, matmul, linears.size());
    lw.constant = attr;
    lw.constOp = constOp;
    if (auto dict = constOp->getAttrOfType<DictionaryAttr>("qf.outliers"))
      lw.outliers = readOutliers(dict, lw.rows, lw.cols);
    linears.push_back(std::move(lw));
  });
  return linears;
}

std::vector<unsigned> linearStages(func::FuncOp func,
                                   ArrayRef<LinearWeight> linears) {
  llvm::DenseMap<Operation *, size_t> index;
  for (auto [i, linear] : llvm::enumerate(linears))
    for (tosa::MatMulOp use : linear.uses())
      index[use] = i;
  // depth(v): constant linears on the longest path into v. Graph IR is one
  // block in dataflow order, so one walk sees every operand's depth first.
  llvm::DenseMap<Value, unsigned> depth;
  std::vector<unsigned> stages(linears.size(), 0);
  func.walk([&](Operation *op) {
    unsigned d = 0;
    for (Value operand : op->getOperands())
      d = std::max(d, depth.lookup(operand));
    if (auto it = index.find(op); it != index.end()) {
      // A shared weight waits for the inputs of all its uses.
      unsigned here = depth.lookup(op->getOperand(0));
      stages[it->second] = std::max(stages[it->second], here);
      d = here + 1;
    }
    if (d)
      for (Value result : op->getResults())
        depth[result] = d;
  });
  return stages;
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
template Value createResourceConst<uint16_t>(OpBuilder &, Location, StringRef,
                                             ArrayRef<uint16_t>,
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
  Value weight = dq;
  if (q.rowPtr)
    weight = qf::SparseOutliersOp::create(b, loc, weightType, weight, q.rowPtr,
                                          q.colIdx, q.values);
  auto transposedType = RankedTensorType::get({linear.cols, linear.rows}, f32);
  Value transposed = tosa::TransposeOp::create(b, loc, transposedType, weight,
                                               b.getDenseI32ArrayAttr({1, 0}));
  auto type3d = RankedTensorType::get({1, linear.cols, linear.rows}, f32);
  ImplicitLocOpBuilder ib(loc, b);
  Value shape = tosa::getTosaConstShape(ib, type3d.getShape());
  Value weight3d = tosa::ReshapeOp::create(b, loc, type3d, transposed, shape);

  for (tosa::MatMulOp use : linear.uses()) {
    Value old = use.getB();
    use.getBMutable().assign(weight3d);
    // Erase the float weight (and its reshape) once nothing else uses it.
    eraseIfDead(old);
  }
  return dq;
}

void eraseIfDead(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (!def->use_empty())
      return;
    Value next = isa<tosa::ReshapeOp>(def) ? def->getOperand(0) : Value();
    def->erase();
    if (!next)
      return;
    v = next;
  }
}

std::vector<float> readFloatsOf(Attribute attr) {
  return readArray<float>(attr);
}

std::optional<std::vector<float>> constantFloats(Value v) {
  if (auto reshape = v.getDefiningOp<tosa::ReshapeOp>())
    v = reshape.getInput1();
  Attribute values;
  if (!matchPattern(v, m_Constant(&values)))
    return std::nullopt;
  auto type = dyn_cast<ShapedType>(v.getType());
  std::vector<float> floats = readFloatsOf(values);
  if (!type || !type.hasStaticShape() ||
      int64_t(floats.size()) != type.getNumElements())
    return std::nullopt;
  return floats;
}

FailureOr<std::vector<double>> calibrationGram(const LinearWeight &linear,
                                               std::string &error) {
  auto calib = linear.matmul->getAttrOfType<DictionaryAttr>("qf.calib");
  std::vector<float> xtx =
      calib ? readFloatsOf(calib.get("xtx")) : std::vector<float>();
  if (xtx.size() != size_t(linear.cols) * size_t(linear.cols)) {
    error = "layer '" + linear.name +
            "' has no calibration statistics (compile with --calib FILE, or "
            "run qf-calibrate first)";
    return failure();
  }
  return std::vector<double>(xtx.begin(), xtx.end());
}

/// Replaces `linear`'s weight with `w` (whose decoded dense part is
/// `decoded`, N x K), adding the linear's outliers as a qf.sparse_outliers
/// that makes the weight exact at their positions, and records the errors
/// against the original weight (the dense remainder `weight` plus the
/// outliers).
static qf::DequantizeOp finishRewrite(OpBuilder &b, LinearWeight &linear,
                                      QuantizedWeight w,
                                      std::vector<float> decoded,
                                      ArrayRef<float> weight) {
  Location loc = linear.matmul.getLoc();
  std::vector<float> reference(weight.begin(), weight.end());
  int64_t nnz = 0;
  if (linear.outliers && linear.outliers->nnz() > 0) {
    quant::SparseRows residual = *linear.outliers;
    quant::addSparse(*linear.outliers, reference.data());
    quant::storeResiduals(residual, decoded.data());
    quant::addSparse(residual, decoded.data());
    nnz = residual.nnz();
    w.rowPtr = createResourceConst<int32_t>(b, loc, linear.name + ".row_ptr",
                                            residual.rowPtr, {linear.rows + 1},
                                            b.getI32Type());
    w.colIdx =
        createResourceConst<int32_t>(b, loc, linear.name + ".col_idx",
                                     residual.colIdx, {nnz}, b.getI32Type());
    w.values =
        createResourceConst<float>(b, loc, linear.name + ".values",
                                   residual.values, {nnz}, b.getF32Type());
  }
  std::string ignored;
  FailureOr<std::vector<double>> gram = calibrationGram(linear, ignored);
  qf::DequantizeOp dq = replaceWithDequantized(b, linear, w);
  dq->setAttr("qf.weight_error",
              b.getF64FloatAttr(quant::relativeError(
                  reference.data(), decoded.data(), decoded.size())));
  if (nnz)
    dq->setAttr("qf.outlier_count", b.getI64IntegerAttr(nnz));
  if (succeeded(gram))
    dq->setAttr("qf.output_error",
                b.getF64FloatAttr(quant::relativeOutputError(
                    reference.data(), decoded.data(), linear.rows, linear.cols,
                    gram->data())));
  return dq;
}

qf::DequantizeOp rewriteAffine(OpBuilder &b, LinearWeight &linear,
                               qf::SchemeAttr scheme,
                               const quant::AffineQuantized &q,
                               ArrayRef<float> weight) {
  b.setInsertionPoint(linear.matmul);
  Location loc = linear.matmul.getLoc();
  QuantizedWeight w;
  w.scheme = scheme;
  w.codes = createResourceConst<uint32_t>(
      b, loc, linear.name + ".codes", q.codes,
      {linear.rows, scheme.wordsPerRow(linear.cols)}, b.getI32Type());
  int64_t scaleRows = scheme.scaleRows(linear.rows);
  int64_t groups = scheme.groupsPerRow(linear.cols);
  w.scales =
      createResourceConst<float>(b, loc, linear.name + ".scales", q.scales,
                                 {scaleRows, groups}, b.getF32Type());
  if (scheme.hasZeroPoints())
    w.zeroPoints = createResourceConst<uint8_t>(
        b, loc, linear.name + ".zero_points", q.zeroPoints, {scaleRows, groups},
        b.getI8Type());
  return finishRewrite(b, linear, w, quant::dequantize(q), weight);
}

qf::DequantizeOp rewriteCodebook(OpBuilder &b, LinearWeight &linear,
                                 const quant::CodebookQuantized &q,
                                 ArrayRef<float> weight) {
  b.setInsertionPoint(linear.matmul);
  Location loc = linear.matmul.getLoc();
  QuantizedWeight w;
  w.scheme = qf::SchemeAttr::get(b.getContext(), qf::SchemeKind::Codebook,
                                 q.bits, qf::SchemeAttr::kPerChannel, false);
  w.codes = createResourceConst<uint32_t>(
      b, loc, linear.name + ".codes", q.codes,
      {linear.rows, w.scheme.wordsPerRow(linear.cols)}, b.getI32Type());
  if (q.halfTable) {
    std::vector<uint16_t> half(q.lut.size());
    for (size_t i = 0; i < half.size(); ++i)
      half[i] = quant::halfBits(q.lut[i]);
    w.lut = createResourceConst<uint16_t>(b, loc, linear.name + ".lut", half,
                                          {linear.rows, q.entries()},
                                          b.getF16Type());
  } else {
    w.lut =
        createResourceConst<float>(b, loc, linear.name + ".lut", q.lut,
                                   {linear.rows, q.entries()}, b.getF32Type());
  }
  return finishRewrite(b, linear, w, quant::dequantize(q), weight);
}

FailureOr<std::vector<float>> calibrationDiagonal(const LinearWeight &linear,
                                                  std::string &error) {
  FailureOr<std::vector<double>> gram = calibrationGram(linear, error);
  if (failed(gram))
    return failure();
  std::vector<float> diag(size_t(linear.cols));
  for (int64_t k = 0; k < linear.cols; ++k)
    diag[size_t(k)] = float((*gram)[size_t(k * linear.cols + k)]);
  return diag;
}

FailureOr<std::vector<float>> fisherInformation(const LinearWeight &linear,
                                                std::string &error) {
  std::vector<float> kn =
      linear.constOp ? readFloatsOf(linear.constOp->getAttr("qf.fisher"))
                     : std::vector<float>();
  if (kn.size() != size_t(linear.rows) * size_t(linear.cols)) {
    error = "layer '" + linear.name +
            "' has no Fisher information (run qf-fisher first, or use "
            "sensitivity xtx)";
    return failure();
  }
  std::vector<float> nk(kn.size());
  for (int64_t k = 0; k < linear.cols; ++k)
    for (int64_t n = 0; n < linear.rows; ++n)
      nk[size_t(n * linear.cols + k)] = kn[size_t(k * linear.rows + n)];
  return nk;
}

DictionaryAttr makeCalibAttr(Builder &b, StringRef name, int64_t rows,
                             ArrayRef<float> xtx, ArrayRef<float> meanAbs) {
  int64_t k = static_cast<int64_t>(meanAbs.size());
  auto vecType = RankedTensorType::get({k}, b.getF32Type());
  auto matType = RankedTensorType::get({k, k}, b.getF32Type());
  NamedAttribute entries[] = {
      b.getNamedAttr("mean_abs", DenseElementsAttr::get(vecType, meanAbs)),
      b.getNamedAttr("rows", b.getI64IntegerAttr(rows)),
      b.getNamedAttr("xtx",
                     DenseResourceElementsAttr::get(
                         matType, sanitizeName(name),
                         HeapAsmResourceBlob::allocateAndCopyInferAlign(xtx)))};
  return b.getDictionaryAttr(entries);
}

int64_t calibrationRows(const LinearWeight &linear) {
  auto calib = linear.matmul->getAttrOfType<DictionaryAttr>("qf.calib");
  auto rows = calib ? calib.getAs<IntegerAttr>("rows") : IntegerAttr();
  return rows ? rows.getInt() : 0;
}

std::vector<float> calibrationMeanAbs(const LinearWeight &linear) {
  auto calib = linear.matmul->getAttrOfType<DictionaryAttr>("qf.calib");
  return calib ? readFloatsOf(calib.get("mean_abs")) : std::vector<float>();
}

} // namespace qforge
