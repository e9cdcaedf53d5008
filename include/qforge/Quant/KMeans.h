//===- KMeans.h - Weighted one-dimensional k-means --------------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// Weighted k-means on the real line: given values x_i with sample weights
// s_i >= 0, find k centroids c_j minimising
//
//   sum_i s_i * min_j (x_i - c_j)^2.
//
// Two solvers:
//  - Exact: the optimum. In one dimension an optimal clustering is a set of
//    contiguous runs of the sorted values, so a dynamic programme over the
//    sorted row finds it (Ckmeans.1d.dp, Wang & Song 2011): D[m][j] = min_i
//    D[m-1][i] + cost(i, j), where cost(i, j) is the weighted within-run sum
//    of squares of sorted values [i, j), O(1) from prefix sums of s, s x and
//    s x^2 (in double, over values centred on their weighted mean). The
//    optimal split point is monotone in j, so each layer is solved by divide
//    and conquer: O(k n log n).
//  - Lloyd: weighted k-means++ seeding (seeded), then Lloyd iterations until
//    no centroid moves by more than tol * (range of x) or maxIterations,
//    as scikit-learn's KMeans (n_init 1) that SqueezeLLM's reference code
//    runs per output row. Each iteration is O(k log n) on the sorted values:
//    the nearest-centroid boundaries are midpoints, found by binary search,
//    and the new centroids come from the prefix sums.
//
// Points of zero weight do not move centroids; they are assigned to their
// nearest centroid like every other point. When every weight is zero the
// values are clustered unweighted. Centroids are returned sorted ascending;
// when there are fewer distinct values than k, the spare centroids repeat the
// largest one. Values must be finite; weights finite and non-negative.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_QUANT_KMEANS_H
#define QFORGE_QUANT_KMEANS_H

#include <cstdint>
#include <vector>

namespace qforge::quant {

enum class KMeansSolver { Exact, Lloyd };

struct KMeansOptions {
  KMeansSolver solver = KMeansSolver::Exact;
  /// Lloyd only.
  int maxIterations = 50;
  double tolerance = 1e-4;
  uint64_t seed = 0;
};

struct KMeansResult {
  /// k centroids, ascending.
  std::vector<float> centroids;
  /// Per value, the index of its nearest centroid.
  std::vector<uint8_t> labels;
  /// sum_i s_i (x_i - centroids[labels_i])^2 with the weights used.
  double cost = 0;
};

/// Clusters the `n` values `x` with sample weights `weights` (null: all 1)
/// into k centroids (1 <= k <= 256).
KMeansResult weightedKMeans1D(const float *x, const float *weights, int64_t n,
                              int k, const KMeansOptions &options = {});

/// The weighted cost of assigning each value to its nearest centroid of the
/// ascending `centroids`; `labels`, when not null, receives the assignment.
double nearestCentroidCost(const float *x, const float *weights, int64_t n,
                           const std::vector<float> &centroids,
                           uint8_t *labels = nullptr);

} // namespace qforge::quant

#endif // QFORGE_QUANT_KMEANS_H
