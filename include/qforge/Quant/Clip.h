//===- Clip.h - Round-to-nearest with a clipping search ---------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// RTN quantization (RTN.h) where each scale-table entry's range is first
// shrunk: for every group, the range [lo, hi] of its weights is replaced by
// [c * lo, c * hi] for the c on the grid 1, 1 - step, 1 - 2 step, ...,
// 1 - maxShrink that gives the least reconstruction error; weights outside the
// shrunk range clamp to the extreme codes. Trading a larger error on a few
// outliers for a finer scale on all other weights usually lowers the error.
//
// The error of a group with weight errors d = w - dequant(quant(w)) is
//  - unweighted:           sum d^2 (the weight MSE);
//  - channel importance a: sum_k a_k d_k^2 (e.g. a = mean x^2 per input
//                          channel, the diagonal of the calibration Gram);
//  - Gram matrix G (K x K): sum over the group's rows of d G_gg d^T, with G_gg
//                          the block of the group's columns: the squared
//                          output error ||X_g d^T||^2 the group alone causes
//                          on calibration inputs (cross-group terms ignored).
// c = 1 (plain RTN) is always a candidate and wins ties, so the chosen error
// never exceeds RTN's under the same weighting.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_QUANT_CLIP_H
#define QFORGE_QUANT_CLIP_H

#include "qforge/Quant/RTN.h"

#include <vector>

namespace qforge::quant {

struct ClipOptions {
  /// The smallest factor tried is 1 - maxShrink (0 <= maxShrink < 1).
  float maxShrink = 0.2f;
  /// Grid spacing of the factors (> 0).
  float step = 0.01f;
};

/// How a group's reconstruction error is weighted; both null: unweighted.
struct ClipWeighting {
  /// Per-input-channel importance a_k >= 0 (cols values).
  const float *channelImportance = nullptr;
  /// Symmetric positive semi-definite cols x cols Gram matrix, row-major;
  /// takes precedence over channelImportance.
  const double *gram = nullptr;
};

/// The factors 1, 1 - step, ..., 1 - maxShrink of `options`.
std::vector<float> clipGrid(const ClipOptions &options);

/// RTN quantization of the row-major rows x cols matrix `w` with each
/// scale-table entry's range shrunk by its best factor. When `chosen` is not
/// null it receives the factor of each table entry (same layout as scales).
AffineQuantized quantizeRTNClipped(const float *w, int64_t rows, int64_t cols,
                                   const Scheme &scheme,
                                   const ClipOptions &options = {},
                                   const ClipWeighting &weighting = {},
                                   std::vector<float> *chosen = nullptr);

} // namespace qforge::quant

#endif // QFORGE_QUANT_CLIP_H
