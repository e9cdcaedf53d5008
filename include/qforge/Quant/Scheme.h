//===- Scheme.h - Affine weight quantization schemes ------------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// A `Scheme` says how a linear layer's weight matrix W (rows = N output
// channels, cols = K input channels, row-major, `W[n*K + k]`) is quantized:
// the code width, how many input channels share one scale, and whether a zero
// point is stored.
//
// Scale (and zero point) tables are row-major with shape
// [scaleRows(N), numGroups(K)]:
//   PerTensor   [1, 1]            one scale for the whole matrix
//   PerChannel  [N, 1]            one scale per output channel (row)
//   Group       [N, ceil(K / G)]  input channel k of row n uses group k / G
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_QUANT_SCHEME_H
#define QFORGE_QUANT_SCHEME_H

#include <cstdint>
#include <string>

namespace qforge::quant {

/// How many weights share one scale.
enum class Granularity { PerTensor, PerChannel, Group };

struct Scheme {
  /// Code width: 2, 3, 4 or 8.
  unsigned bits = 4;
  Granularity granularity = Granularity::Group;
  /// Input channels per scale; used only by `Granularity::Group`.
  int64_t groupSize = 128;
  /// Symmetric schemes have the implicit zero point 2^(bits-1) and store no
  /// zero points; asymmetric ones store one uint8 zero point per scale.
  bool symmetric = true;

  static Scheme perTensor(unsigned bits, bool symmetric) {
    return Scheme{bits, Granularity::PerTensor, 0, symmetric};
  }
  static Scheme perChannel(unsigned bits, bool symmetric) {
    return Scheme{bits, Granularity::PerChannel, 0, symmetric};
  }
  static Scheme grouped(unsigned bits, int64_t groupSize, bool symmetric) {
    return Scheme{bits, Granularity::Group, groupSize, symmetric};
  }

  /// Largest code, 2^bits - 1.
  unsigned maxCode() const { return (1u << bits) - 1; }
  /// The implicit zero point of symmetric schemes, 2^(bits-1).
  int symmetricZero() const { return 1 << (bits - 1); }

  /// Scale columns per row for a matrix with `cols` input channels.
  int64_t numGroups(int64_t cols) const {
    if (granularity == Granularity::Group)
      return (cols + groupSize - 1) / groupSize;
    return 1;
  }
  /// Scale rows for a matrix with `rows` output channels.
  int64_t scaleRows(int64_t rows) const {
    return granularity == Granularity::PerTensor ? 1 : rows;
  }
  /// Scale column used by input channel `col`.
  int64_t groupOf(int64_t col) const {
    return granularity == Granularity::Group ? col / groupSize : 0;
  }
  /// Index into the scale (and zero point) table of weight (row, col) of a
  /// matrix with `cols` input channels.
  int64_t paramIndex(int64_t row, int64_t col, int64_t cols) const {
    int64_t scaleRow = granularity == Granularity::PerTensor ? 0 : row;
    return scaleRow * numGroups(cols) + groupOf(col);
  }

  /// Returns an empty string when the scheme is valid, else a one-line reason.
  std::string validate() const {
    if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
      return "unsupported bit width " + std::to_string(bits) +
             " (expected 2, 3, 4 or 8)";
    if (granularity == Granularity::Group && groupSize < 1)
      return "group size must be positive, got " + std::to_string(groupSize);
    return "";
  }
};

} // namespace qforge::quant

#endif // QFORGE_QUANT_SCHEME_H
