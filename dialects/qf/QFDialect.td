//===- QFDialect.td - The qf quantization dialect ------------*- tablegen -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_DIALECT_QF_QFDIALECT_TD
#define QFORGE_DIALECT_QF_QFDIALECT_TD

include "mlir/IR/OpBase.td"

def QF_Dialect : Dialect {
  let name = "qf";
  let cppNamespace = "::qforge::qf";
  let summary = "Weight quantization: packed codes, scales, look-up tables, sparse outliers";
  let description = [{
    The `qf` dialect is qforge's quantization vocabulary. It states what a quantized weight
    means (`qf.dequantize`, `qf.sparse_outliers`) and the fused operation that kernels
    implement (`qf.fused_matmul`). Quantization data (packed codes, scales, zero points,
    look-up tables, CSR arrays) are SSA operands; the scheme is a small attribute.

    Weight convention: a linear layer's weight is `W[n, k]`, `N` output channels by `K` input
    channels. Codes are unsigned, packed per row into an LSB-first bitstream of 32-bit words
    (code `k` at bits `[k*bits, (k+1)*bits)`), so a row holds `ceil(K*bits/32)` words.
  }];
  let useDefaultAttributePrinterParser = 1;
}

class QF_Op<string mnemonic, list<Trait> traits = []>
    : Op<QF_Dialect, mnemonic, traits>;

#endif // QFORGE_DIALECT_QF_QFDIALECT_TD
