//===- Outliers.h - Dense-and-sparse decomposition --------------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// SqueezeLLM's dense-and-sparse split of a weight matrix W (N x K,
// row-major): a few weights move to a sparse matrix S in CSR form, kept in
// full precision, and only the dense remainder D (those weights set to 0) is
// quantized. Two kinds are extracted:
//
//  - sensitive values: the `fraction` of each matrix's weights with the
//    largest sensitivity (Fisher information), marked first;
//  - outliers: of the remaining weights, those outside symmetric fences of
//    the weight distribution, |w| > T with
//        T = max(|q1 - r * IQR|, |q3 + r * IQR|),   IQR = q3 - q1,
//    q1 and q3 the matrix's quartiles. One range factor r serves every
//    matrix (matrices with heavier tails give more outliers), and it is
//    solved for so that the outliers are a target fraction of all weights
//    (the reference code tunes r by hand to reach that fraction).
//
// After D is quantized to D̂, S stores w - D̂[n, k] at each extracted
// position, so D̂ + S equals W exactly there.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_QUANT_OUTLIERS_H
#define QFORGE_QUANT_OUTLIERS_H

#include <cstddef>
#include <cstdint>
#include <vector>

namespace qforge::quant {

/// A rows x cols sparse matrix in compressed sparse row form: row n holds
/// values[j] at column colIdx[j] for rowPtr[n] <= j < rowPtr[n + 1].
struct SparseRows {
  int64_t rows = 0;
  int64_t cols = 0;
  std::vector<int32_t> rowPtr{0};
  std::vector<int32_t> colIdx;
  std::vector<float> values;

  int64_t nnz() const { return int64_t(values.size()); }
  /// A rows x cols row-major mask: 1 at the stored positions.
  std::vector<uint8_t> positions() const;
};

/// What the fence search needs of one matrix's weight distribution.
struct FenceSummary {
  double q1 = 0, q3 = 0;
  /// Weights summarised (those not excluded).
  int64_t count = 0;
  /// Ascending |w| of an evenly strided subsample of those weights.
  std::vector<float> sampleAbs;

  /// The fence T for range factor r.
  double threshold(double r) const;
  /// Estimated number of summarised weights with |w| > threshold(r).
  double estimatedAbove(double r) const;
};

/// Summarises the `n` weights at `w`, skipping those marked in `excluded`
/// (null: none), keeping at most `maxSample` values of |w|.
FenceSummary summarizeWeights(const float *w, int64_t n,
                              const uint8_t *excluded = nullptr,
                              size_t maxSample = size_t(1) << 16);

/// The range factor r >= 0 at which the estimated outliers of all
/// `matrices` make up `fraction` of their `totalWeights` weights (0 when
/// even r = 0 gives fewer).
double solveFenceRange(const std::vector<FenceSummary> &matrices,
                       int64_t totalWeights, double fraction);

/// Marks (sets to 1 in `mask`) weights not yet marked with |w| > threshold;
/// returns how many.
int64_t markOutsideFence(const float *w, int64_t n, double threshold,
                         uint8_t *mask);

/// Marks the round(fraction * n) weights of largest `sensitivity`; returns
/// how many.
int64_t markMostSensitive(const float *sensitivity, int64_t n, double fraction,
                          uint8_t *mask);

/// The marked weights of the row-major rows x cols matrix `w` as a CSR
/// matrix (with their values), set to 0 in `w`.
SparseRows extractMarked(float *w, int64_t rows, int64_t cols,
                         const uint8_t *mask);

/// Makes D̂ + S exact at S's positions: S.values[j] = original - D̂ there,
/// where `original` are the values extract took and `decoded` is D̂
/// (row-major rows x cols).
void storeResiduals(SparseRows &s, const float *decoded);

/// Adds S to the row-major matrix `dense` (same shape).
void addSparse(const SparseRows &s, float *dense);

/// Bytes of storage with f32 values: int32 row pointers and columns.
int64_t packedBytes(const SparseRows &s);

} // namespace qforge::quant

#endif // QFORGE_QUANT_OUTLIERS_H
