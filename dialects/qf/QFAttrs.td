//===- QFAttrs.td - qf dialect attributes --------------------*- tablegen -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_DIALECT_QF_QFATTRS_TD
#define QFORGE_DIALECT_QF_QFATTRS_TD

include "QFDialect.td"
include "mlir/IR/AttrTypeBase.td"
include "mlir/IR/EnumAttr.td"

def QF_SchemeKind : I32EnumAttr<"SchemeKind", "how codes map to values", [
    I32EnumAttrCase<"Affine", 0, "affine">,
    I32EnumAttrCase<"Codebook", 1, "codebook">]> {
  let cppNamespace = "::qforge::qf";
  let genSpecializedAttr = 0;
}

def QF_SchemeAttr : AttrDef<QF_Dialect, "Scheme"> {
  let mnemonic = "scheme";
  let summary = "A weight quantization scheme";
  let description = [{
    `#qf.scheme<affine, bits = 4, group = 128, symmetric>`: value = scale * (code - zero)
    with one scale per `group` input channels of each output row (`per_channel`: one per
    row; `per_tensor`: one for the whole matrix). `symmetric` fixes zero = 2^(bits-1);
    `zero_point` stores one zero point next to each scale.

    `#qf.scheme<codebook, bits = 3>`: value = lut[row, code], one table of 2^bits entries per
    output row (non-uniform quantization).
  }];
  let parameters = (ins "SchemeKind":$kind, "unsigned":$bits,
                        "int64_t":$groupSize, "bool":$symmetric);
  let hasCustomAssemblyFormat = 1;
  let genVerifyDecl = 1;
  let extraClassDeclaration = [{
    /// groupSize encoding: > 0 a group size, kPerChannel, kPerTensor.
    static constexpr int64_t kPerChannel = -1;
    static constexpr int64_t kPerTensor = 0;
    bool isAffine() const { return getKind() == SchemeKind::Affine; }
    bool isCodebook() const { return getKind() == SchemeKind::Codebook; }
    bool isPerTensor() const { return isAffine() && getGroupSize() == kPerTensor; }
    bool isPerChannel() const { return isAffine() && getGroupSize() == kPerChannel; }
    bool hasZeroPoints() const { return isAffine() && !getSymmetric(); }
    /// Rows of the scale (zero point) tensor for a weight with `rows` rows.
    int64_t scaleRows(int64_t rows) const { return isPerTensor() ? 1 : rows; }
    /// Scales per row for a weight with `cols` input channels.
    int64_t groupsPerRow(int64_t cols) const {
      if (getGroupSize() > 0)
        return (cols + getGroupSize() - 1) / getGroupSize();
      return 1;
    }
    /// 32-bit words per packed row of `cols` codes.
    int64_t wordsPerRow(int64_t cols) const { return (cols * getBits() + 31) / 32; }
  }];
}

#endif // QFORGE_DIALECT_QF_QFATTRS_TD
