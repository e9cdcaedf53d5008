//===- Codebook.h - Non-uniform (look-up table) quantization ----*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// SqueezeLLM's non-uniform quantization of a weight matrix W (N x K,
// row-major): each output row n gets its own table of 2^bits values
// lut[n, 0..2^bits), the centroids of a weighted k-means over the row's
// weights (KMeans.h) with the weights' sensitivities as sample weights, and
// weight (n, k) is stored as the bits-wide index of its nearest table entry,
// packed as Packing.h says. It decodes to lut[n, code]: the layout of
// `qf.dequantize` with a `#qf.scheme<codebook, bits = B>`.
//
// The sensitivity of weight (n, k) (the diagonal Fisher information F[n, k],
// or a proxy) is given per weight, per input channel (diag(XᵀX)[k]: the same
// for every row, which a per-row clustering cannot tell from the rank-one
// Fisher approximation E[δ_n²] · diag(XᵀX)[k]) or not at all (plain
// k-means). Excluded weights (extracted as sparse outliers, whose dense value
// is 0) get sample weight 0: they do not move the centroids and are coded
// like any other weight.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_QUANT_CODEBOOK_H
#define QFORGE_QUANT_CODEBOOK_H

#include "qforge/Quant/KMeans.h"

#include <cstdint>
#include <functional>
#include <vector>

namespace qforge::quant {

struct CodebookQuantized {
  int64_t rows = 0;
  int64_t cols = 0;
  unsigned bits = 0;
  /// Packed codes: rows * wordsPerRow(cols, bits) words.
  std::vector<uint32_t> codes;
  /// Row-major [rows, 2^bits], each row ascending.
  std::vector<float> lut;
  /// Whether the table is stored as f16 (its entries are then f16 values).
  bool halfTable = false;

  int64_t entries() const { return int64_t(1) << bits; }
};

/// Rounds every table entry to the nearest f16 value (ties to even) and marks
/// the table f16; the codes stay (each weight keeps its cluster).
void roundTableToHalf(CodebookQuantized &q);

/// The IEEE binary16 bits of the f16 value nearest to `v` (ties to even).
uint16_t halfBits(float v);

/// Where the sample weights of the k-means come from; both null: all 1.
struct Sensitivity {
  /// rows x cols, row-major.
  const float *perWeight = nullptr;
  /// cols values, the same for every row (ignored when perWeight is set).
  const float *perColumn = nullptr;
};

/// Quantizes the row-major rows x cols matrix `w` with one k-means table of
/// 2^bits entries per row (bits 2, 3, 4 or 8). `excluded` (rows x cols, or
/// null) marks weights that get sample weight 0. `progress`, when set, is
/// called after each block of rows with the number of rows done.
CodebookQuantized
quantizeCodebook(const float *w, int64_t rows, int64_t cols, unsigned bits,
                 const Sensitivity &sensitivity,
                 const uint8_t *excluded = nullptr,
                 const KMeansOptions &options = {},
                 const std::function<void(int64_t)> &progress = nullptr);

/// The float matrix (rows x cols, row-major) that `q` stands for.
std::vector<float> dequantize(const CodebookQuantized &q);

/// Bytes of storage: packed codes + f32 tables.
int64_t packedBytes(const CodebookQuantized &q);

} // namespace qforge::quant

#endif // QFORGE_QUANT_CODEBOOK_H
