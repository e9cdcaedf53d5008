//===- QFDialect.cpp - The qf quantization dialect --------------*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "dialects/qf/QFDialect.h"

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/DialectImplementation.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/IR/Matchers.h"
#include "llvm/ADT/TypeSwitch.h"

using namespace mlir;
using namespace qforge::qf;

#include "dialects/qf/QFDialect.cpp.inc"
#include "dialects/qf/QFEnums.cpp.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/qf/QFAttrs.cpp.inc"

#define GET_OP_CLASSES
#include "dialects/qf/QFOps.cpp.inc"

void QFDialect::initialize() {
  addAttributes<
#define GET_ATTRDEF_LIST
#include "dialects/qf/QFAttrs.cpp.inc"
      >();
  addOperations<
#define GET_OP_LIST
#include "dialects/qf/QFOps.cpp.inc"
      >();
}

//===----------------------------------------------------------------------===//
// SchemeAttr
//===----------------------------------------------------------------------===//

// #qf.scheme<affine, bits = 4, group = 32, symmetric>
// #qf.scheme<affine, bits = 8, per_channel, zero_point>
// #qf.scheme<codebook, bits = 3>
Attribute SchemeAttr::parse(AsmParser &parser, Type) {
  StringRef kindName;
  unsigned bits = 0;
  if (parser.parseLess() || parser.parseKeyword(&kindName) ||
      parser.parseComma() || parser.parseKeyword("bits") ||
      parser.parseEqual() || parser.parseInteger(bits))
    return {};
  std::optional<SchemeKind> kind = symbolizeSchemeKind(kindName);
  if (!kind) {
    parser.emitError(parser.getNameLoc(),
                     "expected 'affine' or 'codebook', got '")
        << kindName << "'";
    return {};
  }
  int64_t group = SchemeAttr::kPerChannel;
  bool symmetric = false;
  if (*kind == SchemeKind::Affine) {
    StringRef gran;
    if (parser.parseComma() || parser.parseKeyword(&gran))
      return {};
    if (gran == "group") {
      if (parser.parseEqual() || parser.parseInteger(group))
        return {};
    } else if (gran == "per_channel") {
      group = SchemeAttr::kPerChannel;
    } else if (gran == "per_tensor") {
      group = SchemeAttr::kPerTensor;
    } else {
      parser.emitError(parser.getCurrentLocation(),
                       "expected 'group = N', 'per_channel' or 'per_tensor'");
      return {};
    }
    StringRef sym;
    if (parser.parseComma() || parser.parseKeyword(&sym))
      return {};
    if (sym != "symmetric" && sym != "zero_point") {
      parser.emitError(parser.getCurrentLocation(),
                       "expected 'symmetric' or 'zero_point'");
      return {};
    }
    symmetric = sym == "symmetric";
  }
  if (parser.parseGreater())
    return {};
  return parser.getChecked<SchemeAttr>(parser.getContext(), *kind, bits, group,
                                       symmetric);
}

void SchemeAttr::print(AsmPrinter &p) const {
  p << "<" << stringifySchemeKind(getKind()) << ", bits = " << getBits();
  if (isAffine()) {
    if (getGroupSize() > 0)
      p << ", group = " << getGroupSize();
    else
      p << (isPerTensor() ? ", per_tensor" : ", per_channel");
    p << (getSymmetric() ? ", symmetric" : ", zero_point");
  }
  p << ">";
}

LogicalResult SchemeAttr::verify(function_ref<InFlightDiagnostic()> emitError,
                                 SchemeKind kind, unsigned bits,
                                 int64_t groupSize, bool symmetric) {
  if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
    return emitError() << "bits must be 2, 3, 4 or 8, got " << bits;
  if (kind == SchemeKind::Affine && groupSize < SchemeAttr::kPerChannel)
    return emitError() << "group size must be positive, got " << groupSize;
  if (kind == SchemeKind::Codebook && (groupSize != kPerChannel || symmetric))
    return emitError() << "a codebook scheme has one table per row";
  return success();
}

//===----------------------------------------------------------------------===//
// Shared verification of weight operands
//===----------------------------------------------------------------------===//

namespace {
/// The operands that define a quantized weight, as types (null when absent).
struct WeightTypes {
  ShapedType codes, scales, zeroPoints, lut;
};
} // namespace

static std::string shapeStr(ShapedType t) {
  std::string s;
  llvm::raw_string_ostream os(s);
  llvm::interleave(
      t.getShape(), os,
      [&](int64_t d) {
        os << (ShapedType::isDynamic(d) ? "?" : std::to_string(d));
      },
      "x");
  return s;
}

/// Checks `got` against `want` unless either is dynamic.
static bool mismatch(int64_t got, int64_t want) {
  return !ShapedType::isDynamic(got) && !ShapedType::isDynamic(want) &&
         got != want;
}

static LogicalResult verifyWeight(Operation *op, SchemeAttr scheme,
                                  const WeightTypes &w, int64_t rows,
                                  int64_t cols) {
  if (w.codes.getRank() != 2)
    return op->emitOpError(
               "expects codes of rank 2 (rows x packed words), got rank ")
           << w.codes.getRank();
  if (!w.codes.getElementType().isInteger(32))
    return op->emitOpError("expects codes packed in i32 words");
  if (mismatch(w.codes.getDimSize(0), rows))
    return op->emitOpError("expects ")
           << rows << " rows of codes, got " << w.codes.getDimSize(0);
  if (!ShapedType::isDynamic(cols) &&
      mismatch(w.codes.getDimSize(1), scheme.wordsPerRow(cols)))
    return op->emitOpError("expects ")
           << scheme.wordsPerRow(cols) << " words per row for " << cols
           << " codes of " << scheme.getBits() << " bits, got "
           << w.codes.getDimSize(1);

  if (scheme.isCodebook()) {
    if (!w.lut)
      return op->emitOpError("a codebook scheme needs a lut");
    if (w.scales || w.zeroPoints)
      return op->emitOpError(
          "a codebook scheme takes no scales or zero points");
    int64_t entries = int64_t(1) << scheme.getBits();
    if (w.lut.getRank() != 2 || mismatch(w.lut.getDimSize(0), rows) ||
        mismatch(w.lut.getDimSize(1), entries))
      return op->emitOpError("expects a lut of ")
             << rows << "x" << entries << " (rows x 2^bits), got "
             << shapeStr(w.lut);
    if (!isa<FloatType>(w.lut.getElementType()))
      return op->emitOpError("expects a floating-point lut");
    return success();
  }

  if (w.lut)
    return op->emitOpError("an affine scheme takes no lut");
  if (!w.scales)
    return op->emitOpError("an affine scheme needs scales");
  if (!isa<FloatType>(w.scales.getElementType()))
    return op->emitOpError("expects floating-point scales");
  if (w.scales.getRank() != 2)
    return op->emitOpError(
               "expects scales of rank 2 (rows x groups), got rank ")
           << w.scales.getRank();
  int64_t scaleRows = ShapedType::isDynamic(rows) && !scheme.isPerTensor()
                          ? ShapedType::kDynamic
                          : scheme.scaleRows(rows);
  if (mismatch(w.scales.getDimSize(0), scaleRows))
    return op->emitOpError("expects ")
           << scaleRows << " rows of scales, got " << w.scales.getDimSize(0);
  if (!ShapedType::isDynamic(cols) &&
      mismatch(w.scales.getDimSize(1), scheme.groupsPerRow(cols))) {
    auto diag = op->emitOpError("expects ")
                << scheme.groupsPerRow(cols) << " scales for " << cols
                << " columns";
    if (scheme.getGroupSize() > 0)
      diag << " in groups of " << scheme.getGroupSize();
    else
      diag << (scheme.isPerTensor() ? " per tensor" : " per channel");
    return diag << ", got " << w.scales.getDimSize(1);
  }
  if (scheme.getSymmetric() && w.zeroPoints)
    return op->emitOpError("a symmetric scheme takes no zero points");
  if (!scheme.getSymmetric()) {
    if (!w.zeroPoints)
      return op->emitOpError("a scheme with zero points needs zero_points");
    if (!w.zeroPoints.getElementType().isInteger(8))
      return op->emitOpError("expects i8 zero points");
    if (w.zeroPoints.getShape() != w.scales.getShape())
      return op->emitOpError("expects zero points shaped like the scales (")
             << shapeStr(w.scales) << "), got " << shapeStr(w.zeroPoints);
  }
  return success();
}

/// Returns the constant i32 contents of `v` when it is a dense or resource
/// constant.
static std::optional<SmallVector<int32_t>> constantI32(Value v) {
  Attribute attr;
  if (!matchPattern(v, m_Constant(&attr)))
    return std::nullopt;
  if (auto dense = dyn_cast<DenseIntElementsAttr>(attr)) {
    SmallVector<int32_t> out;
    for (const APInt &x : dense.getValues<APInt>())
      out.push_back(int32_t(x.getSExtValue()));
    return out;
  }
  if (auto res = dyn_cast<DenseI32ResourceElementsAttr>(attr))
    if (std::optional<ArrayRef<int32_t>> data = res.tryGetAsArrayRef())
      return SmallVector<int32_t>(*data);
  return std::nullopt;
}

static LogicalResult verifyCSR(Operation *op, ShapedType rowPtr,
                               ShapedType colIdx, ShapedType values,
                               Value rowPtrValue, Value colIdxValue,
                               int64_t rows, int64_t cols) {
  if (rowPtr.getRank() != 1 || colIdx.getRank() != 1 || values.getRank() != 1)
    return op->emitOpError("expects 1-D CSR arrays (row_ptr, col_idx, values)");
  if (!rowPtr.getElementType().isInteger(32) ||
      !colIdx.getElementType().isInteger(32))
    return op->emitOpError("expects i32 row pointers and column indices");
  if (!isa<FloatType>(values.getElementType()))
    return op->emitOpError("expects floating-point outlier values");
  if (!ShapedType::isDynamic(rows) && mismatch(rowPtr.getDimSize(0), rows + 1))
    return op->emitOpError("expects ")
           << rows + 1 << " row pointers for " << rows << " rows, got "
           << rowPtr.getDimSize(0);
  if (mismatch(colIdx.getDimSize(0), values.getDimSize(0)))
    return op->emitOpError("expects as many column indices as values, got ")
           << colIdx.getDimSize(0) << " and " << values.getDimSize(0);
  if (std::optional<SmallVector<int32_t>> ptr = constantI32(rowPtrValue)) {
    int64_t nnz = values.getDimSize(0);
    if (ptr->empty() || ptr->front() != 0)
      return op->emitOpError("row_ptr must start at 0");
    for (size_t i = 1; i < ptr->size(); ++i)
      if ((*ptr)[i] < (*ptr)[i - 1])
        return op->emitOpError("row_ptr decreases at row ") << i - 1;
    if (!ShapedType::isDynamic(nnz) && ptr->back() != nnz)
      return op->emitOpError("row_ptr ends at ")
             << ptr->back() << " but there are " << nnz << " values";
  }
  if (std::optional<SmallVector<int32_t>> idx = constantI32(colIdxValue)) {
    for (auto [i, c] : llvm::enumerate(*idx))
      if (c < 0 || (!ShapedType::isDynamic(cols) && c >= cols))
        return op->emitOpError("column index ")
               << c << " at position " << i << " is outside [0, " << cols
               << ")";
  }
  return success();
}

static ShapedType typeOrNull(Value v) {
  return v ? cast<ShapedType>(v.getType()) : ShapedType();
}

//===----------------------------------------------------------------------===//
// DequantizeOp
//===----------------------------------------------------------------------===//

LogicalResult DequantizeOp::verify() {
  auto result = cast<ShapedType>(getResult().getType());
  if (result.getRank() != 2)
    return emitOpError("expects a weight of rank 2 (rows x columns), got rank ")
           << result.getRank();
  WeightTypes w{typeOrNull(getCodes()), typeOrNull(getScales()),
                typeOrNull(getZeroPoints()), typeOrNull(getLut())};
  return verifyWeight(*this, getScheme(), w, result.getDimSize(0),
                      result.getDimSize(1));
}

//===----------------------------------------------------------------------===//
// SparseOutliersOp
//===----------------------------------------------------------------------===//

LogicalResult SparseOutliersOp::verify() {
  auto dense = cast<ShapedType>(getDense().getType());
  if (dense.getRank() != 2)
    return emitOpError("expects a dense weight of rank 2, got rank ")
           << dense.getRank();
  return verifyCSR(*this, typeOrNull(getRowPtr()), typeOrNull(getColIdx()),
                   typeOrNull(getValues()), getRowPtr(), getColIdx(),
                   dense.getDimSize(0), dense.getDimSize(1));
}

//===----------------------------------------------------------------------===//
// FusedMatmulOp
//===----------------------------------------------------------------------===//

LogicalResult FusedMatmulOp::verify() {
  bool tensors = isa<RankedTensorType>(getInit().getType());
  for (Value v : getOperands())
    if (isa<RankedTensorType>(v.getType()) != tensors)
      return emitOpError(
          "expects all operands to be tensors or all to be memrefs");
  if (tensors != bool(getResult()))
    return emitOpError(tensors ? "on tensors returns the destination's type"
                               : "on memrefs has no result");
  if (getResult() && getResult().getType() != getInit().getType())
    return emitOpError("result type must match the destination type");

  auto x = cast<ShapedType>(getX().getType());
  auto init = cast<ShapedType>(getInit().getType());
  if (x.getRank() < 1 || x.getRank() != init.getRank())
    return emitOpError(
               "expects input and destination of the same rank >= 1, got ")
           << x.getRank() << " and " << init.getRank();
  for (int64_t i = 0; i + 1 < x.getRank(); ++i)
    if (mismatch(x.getDimSize(i), init.getDimSize(i)))
      return emitOpError("input and destination differ in dimension ") << i;
  if (!isa<FloatType>(x.getElementType()) ||
      x.getElementType() != init.getElementType())
    return emitOpError("expects input and destination of the same float type");

  int64_t rows = getN(), cols = getK();
  WeightTypes w{typeOrNull(getCodes()), typeOrNull(getScales()),
                typeOrNull(getZeroPoints()), typeOrNull(getLut())};
  if (failed(verifyWeight(*this, getScheme(), w, rows, cols)))
    return failure();
  if (hasOutliers() &&
      failed(verifyCSR(*this, typeOrNull(getRowPtr()), typeOrNull(getColIdx()),
                       typeOrNull(getValues()), getRowPtr(), getColIdx(), rows,
                       cols)))
    return failure();
  if (getBias()) {
    auto bias = cast<ShapedType>(getBias().getType());
    if (bias.getRank() != 1 || mismatch(bias.getDimSize(0), rows))
      return emitOpError("expects a bias of ")
             << rows << " values, got " << shapeStr(bias);
  }
  return success();
}

MutableOperandRange FusedMatmulOp::getDpsInitsMutable() {
  return getInitMutable();
}

void FusedMatmulOp::getEffects(
    SmallVectorImpl<SideEffects::EffectInstance<MemoryEffects::Effect>>
        &effects) {
  for (OpOperand &operand : getOperation()->getOpOperands()) {
    if (!isa<MemRefType>(operand.get().getType()))
      continue;
    if (&operand == &getInitMutable())
      effects.emplace_back(MemoryEffects::Write::get(), &operand,
                           SideEffects::DefaultResource::get());
    else
      effects.emplace_back(MemoryEffects::Read::get(), &operand,
                           SideEffects::DefaultResource::get());
  }
}
