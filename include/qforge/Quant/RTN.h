//===- RTN.h - Affine quantization and round-to-nearest ---------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// Affine quantization of a weight matrix W (N x K, row-major) under a
// `Scheme`. Weight (n, k) in scale group g = scheme.groupOf(k) is stored as an
// unsigned code u in [0, 2^bits - 1] and decodes to
//
//   w = scale[n, g] * (u - z[n, g])
//
// (per tensor: scale[0, 0] and z[0, 0] for every weight).
//
// Group parameters, from the weights of one group:
//  - symmetric: z = 2^(bits-1) (implicit, not stored),
//      scale = max|w| / (2^(bits-1) - 1),
//      u = clamp(round(w / scale), -(2^(bits-1) - 1), 2^(bits-1) - 1) + z,
//    so codes lie in [1, 2^bits - 1] (2-bit: q in {-1, 0, 1});
//  - asymmetric: lo = min(min w, 0), hi = max(max w, 0),
//      scale = (hi - lo) / (2^bits - 1),
//      z = clamp(round(-lo / scale), 0, 2^bits - 1) (stored as uint8),
//      u = clamp(round(w / scale) + z, 0, 2^bits - 1).
// A group whose range is zero (all weights 0) gets scale = 1, and its codes
// decode to exactly 0. In both forms w = 0 decodes to exactly 0.
//
// Rounding is round half away from zero (std::round), in float arithmetic.
// Weights must be finite.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_QUANT_RTN_H
#define QFORGE_QUANT_RTN_H

#include "qforge/Quant/Scheme.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace qforge::quant {

/// Scale and zero point of one group (for symmetric schemes, zero is the
/// implicit 2^(bits-1)).
struct GroupParams {
  float scale;
  int zero;
};

/// Smallest and largest weight of a group.
struct ValueRange {
  float lo;
  float hi;
};

/// The range of the `count` weights at `values` (both 0 when `count` is 0).
ValueRange valueRange(const float *values, int64_t count);

/// Parameters of a group whose weights span `range` (lo <= hi). Searches that
/// shrink or otherwise override a group's range (clipping) pass their own.
GroupParams computeGroupParams(ValueRange range, const Scheme &scheme);

/// Parameters of the group made of `count` weights at `groupValues`:
/// computeGroupParams(valueRange(groupValues, count), scheme).
GroupParams computeGroupParams(const float *groupValues, int64_t count,
                               const Scheme &scheme);

/// The code of weight `w` in a group with the given parameters.
unsigned quantizeValue(float w, float scale, int zero, const Scheme &scheme);

/// The weight that `code` stands for: scale * (code - zero).
inline float dequantizeValue(unsigned code, float scale, int zero) {
  return scale * static_cast<float>(static_cast<int>(code) - zero);
}

/// A quantized weight matrix, as `qf.dequantize` consumes it.
struct AffineQuantized {
  int64_t rows = 0;
  int64_t cols = 0;
  Scheme scheme;
  /// Packed codes (see Packing.h): rows * wordsPerRow(cols, bits) words.
  std::vector<uint32_t> codes;
  /// Row-major [scheme.scaleRows(rows), scheme.numGroups(cols)].
  std::vector<float> scales;
  /// Same shape as `scales`; empty when the scheme is symmetric.
  std::vector<uint8_t> zeroPoints;

  /// Parameters used by weight (row, col).
  GroupParams params(int64_t row, int64_t col) const;
  /// Stores `p` as entry `index` of the scale (and zero point) table.
  void setParams(int64_t index, GroupParams p);
};

/// The weights of W covered by one scale-table entry: rows [rowBegin, rowEnd)
/// x columns [colBegin, colEnd).
struct GroupRegion {
  int64_t rowBegin;
  int64_t rowEnd;
  int64_t colBegin;
  int64_t colEnd;
};

/// The region of scale-table entry (scaleRow, group) of a rows x cols matrix.
GroupRegion groupRegion(const Scheme &scheme, int64_t rows, int64_t cols,
                        int64_t scaleRow, int64_t group);

/// The range of the weights of `region` in the row-major matrix `w`.
ValueRange regionRange(const float *w, int64_t cols, const GroupRegion &region);

/// A rows x cols AffineQuantized under `scheme` whose codes and parameter
/// tables are allocated and zero-filled.
AffineQuantized makeQuantized(int64_t rows, int64_t cols, const Scheme &scheme);

/// Fills q's parameter tables with the RTN parameters of each group of `w`
/// (q.rows x q.cols, row-major).
void fillRTNParams(AffineQuantized &q, const float *w);

/// Fills the codes of `q` by rounding each weight of `w` (q.rows x q.cols)
/// to nearest with the parameters already in q's tables.
void encodeWithParams(AffineQuantized &q, const float *w);

/// Round-to-nearest quantization of a row-major `rows` x `cols` matrix.
/// The scheme must be valid (`scheme.validate()` empty).
AffineQuantized quantizeRTN(const float *w, int64_t rows, int64_t cols,
                            const Scheme &scheme);

/// The float matrix (rows x cols, row-major) that `q` stands for.
std::vector<float> dequantize(const AffineQuantized &q);

/// ||ref - approx||_2 / ||ref||_2 over `n` elements. When ref is all zeros:
/// 0 if approx is too, infinity otherwise.
double relativeError(const float *ref, const float *approx, size_t n);

/// Bytes of storage: packed codes + f32 scales + uint8 zero points.
int64_t packedBytes(const AffineQuantized &q);

/// Storage bits per weight, packedBytes * 8 / (rows * cols).
double bitsPerWeight(const AffineQuantized &q);

} // namespace qforge::quant

#endif // QFORGE_QUANT_RTN_H
