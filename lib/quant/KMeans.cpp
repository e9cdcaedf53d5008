//===- KMeans.cpp - Weighted one-dimensional k-means ------------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//

#include "qforge/Quant/KMeans.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

namespace qforge::quant {

namespace {

/// The values in ascending order with their weights, and prefix sums of
/// s, s x and s x^2 over values centred on their weighted mean.
struct SortedValues {
  std::vector<double> x, s;
  std::vector<double> p0, p1, p2;
  double mean = 0;

  SortedValues(const float *values, const float *weights, int64_t n) {
    std::vector<int64_t> order(size_t(n), 0);
    std::iota(order.begin(), order.end(), int64_t(0));
    std::sort(order.begin(), order.end(),
              [&](int64_t a, int64_t b) { return values[a] < values[b]; });
    double total = 0;
    if (weights)
      for (int64_t i = 0; i < n; ++i)
        total += weights[i];
    bool unweighted = !weights || total <= 0;
    x.resize(size_t(n));
    s.resize(size_t(n));
    double sum = 0, weightSum = 0;
    for (int64_t i = 0; i < n; ++i) {
      x[size_t(i)] = values[order[size_t(i)]];
      s[size_t(i)] = unweighted ? 1.0 : double(weights[order[size_t(i)]]);
      sum += s[size_t(i)] * x[size_t(i)];
      weightSum += s[size_t(i)];
    }
    mean = weightSum > 0 ? sum / weightSum : 0;
    p0.assign(size_t(n) + 1, 0);
    p1.assign(size_t(n) + 1, 0);
    p2.assign(size_t(n) + 1, 0);
    for (size_t i = 0; i < size_t(n); ++i) {
      double c = x[i] - mean;
      p0[i + 1] = p0[i] + s[i];
      p1[i + 1] = p1[i] + s[i] * c;
      p2[i + 1] = p2[i] + s[i] * c * c;
    }
  }

  int64_t size() const { return int64_t(x.size()); }

  /// Weighted within-run sum of squares of sorted values [i, j).
  double cost(int64_t i, int64_t j) const {
    double w = p0[size_t(j)] - p0[size_t(i)];
    if (w <= 0)
      return 0;
    double m1 = p1[size_t(j)] - p1[size_t(i)];
    return std::max(0.0, p2[size_t(j)] - p2[size_t(i)] - m1 * m1 / w);
  }

  /// The weighted mean of run [i, j); the plain mean when its weights are
  /// all zero; NaN for an empty run.
  double centroid(int64_t i, int64_t j) const {
    if (i >= j)
      return std::numeric_limits<double>::quiet_NaN();
    double w = p0[size_t(j)] - p0[size_t(i)];
    if (w > 0)
      return mean + (p1[size_t(j)] - p1[size_t(i)]) / w;
    double sum = 0;
    for (int64_t t = i; t < j; ++t)
      sum += x[size_t(t)];
    return sum / double(j - i);
  }
};

/// Fills NaN (empty) centroids with the largest finite one and sorts.
std::vector<float> finishCentroids(const std::vector<double> &raw) {
  double largest = -std::numeric_limits<double>::infinity();
  for (double c : raw)
    if (!std::isnan(c))
      largest = std::max(largest, c);
  if (std::isinf(largest))
    largest = 0;
  std::vector<float> out;
  for (double c : raw)
    out.push_back(float(std::isnan(c) ? largest : c));
  std::sort(out.begin(), out.end());
  return out;
}

/// Exact optimum by dynamic programming with divide-and-conquer layers.
std::vector<float> exactCentroids(const SortedValues &v, int k) {
  const int64_t n = v.size();
  std::vector<double> prev(size_t(n) + 1), cur(size_t(n) + 1);
  // split[m][j]: start of the last run of the best m+1 runs over [0, j).
  std::vector<std::vector<int32_t>> split(size_t(k),
                                          std::vector<int32_t>(size_t(n) + 1));
  for (int64_t j = 0; j <= n; ++j)
    prev[size_t(j)] = v.cost(0, j);
  for (int m = 1; m < k; ++m) {
    std::vector<int32_t> &best = split[size_t(m)];
    // Solves cur[j] for j in [lo, hi], knowing the optimal split lies in
    // [optLo, optHi]; the split is monotone in j.
    auto solve = [&](auto &&self, int64_t lo, int64_t hi, int64_t optLo,
                     int64_t optHi) -> void {
      if (lo > hi)
        return;
      int64_t mid = lo + (hi - lo) / 2;
      double bestCost = std::numeric_limits<double>::infinity();
      int64_t bestSplit = optLo;
      for (int64_t i = optLo, end = std::min(mid, optHi); i <= end; ++i) {
        double c = prev[size_t(i)] + v.cost(i, mid);
        if (c < bestCost) {
          bestCost = c;
          bestSplit = i;
        }
      }
      cur[size_t(mid)] = bestCost;
      best[size_t(mid)] = int32_t(bestSplit);
      self(self, lo, mid - 1, optLo, bestSplit);
      self(self, mid + 1, hi, bestSplit, optHi);
    };
    solve(solve, 0, n, 0, n);
    std::swap(prev, cur);
  }
  std::vector<double> raw(static_cast<size_t>(k));
  int64_t j = n;
  for (int m = k - 1; m >= 0; --m) {
    int64_t i = m == 0 ? 0 : split[size_t(m)][size_t(j)];
    raw[size_t(m)] = v.centroid(i, j);
    j = i;
  }
  return finishCentroids(raw);
}

/// Squared distance of each value to its nearest centroid in `centres`.
double nearestSquared(double x, const std::vector<double> &centres) {
  double best = std::numeric_limits<double>::infinity();
  for (double c : centres)
    best = std::min(best, (x - c) * (x - c));
  return best;
}

/// Greedy weighted k-means++ seeding (scikit-learn's: 2 + floor(ln k)
/// candidates per step, keeping the one that lowers the potential most).
std::vector<double> kmeansPlusPlus(const SortedValues &v, int k,
                                   std::mt19937_64 &rng) {
  const int64_t n = v.size();
  std::uniform_real_distribution<double> uniform(0.0, 1.0);
  auto sample = [&](const std::vector<double> &cumulative) {
    double r = uniform(rng) * cumulative.back();
    auto it = std::upper_bound(cumulative.begin(), cumulative.end(), r);
    return std::min<int64_t>(int64_t(it - cumulative.begin()), n - 1);
  };
  std::vector<double> centres{
      v.x[size_t(sample(std::vector<double>(v.p0.begin() + 1, v.p0.end())))]};
  std::vector<double> dist(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    dist[size_t(i)] = nearestSquared(v.x[size_t(i)], centres);
  const int trials = 2 + int(std::log(double(k)));
  std::vector<double> cumulative(static_cast<size_t>(n));
  for (int c = 1; c < k; ++c) {
    double acc = 0;
    for (int64_t i = 0; i < n; ++i)
      cumulative[size_t(i)] = acc += v.s[size_t(i)] * dist[size_t(i)];
    if (acc <= 0)
      break; // every point already sits on a centre
    double bestPotential = std::numeric_limits<double>::infinity();
    double bestCentre = 0;
    for (int t = 0; t < trials; ++t) {
      double candidate = v.x[size_t(sample(cumulative))];
      double potential = 0;
      for (int64_t i = 0; i < n; ++i) {
        double d = v.x[size_t(i)] - candidate;
        potential += v.s[size_t(i)] * std::min(dist[size_t(i)], d * d);
      }
      if (potential < bestPotential) {
        bestPotential = potential;
        bestCentre = candidate;
      }
    }
    centres.push_back(bestCentre);
    for (int64_t i = 0; i < n; ++i) {
      double d = v.x[size_t(i)] - bestCentre;
      dist[size_t(i)] = std::min(dist[size_t(i)], d * d);
    }
  }
  return centres;
}

std::vector<float> lloydCentroids(const SortedValues &v, int k,
                                  const KMeansOptions &options) {
  const int64_t n = v.size();
  std::mt19937_64 rng(options.seed);
  std::vector<double> centres = kmeansPlusPlus(v, k, rng);
  std::sort(centres.begin(), centres.end());
  // scikit-learn's tolerance: tol times the mean variance of the data.
  double mean = 0, var = 0;
  for (double x : v.x)
    mean += x;
  mean /= double(n);
  for (double x : v.x)
    var += (x - mean) * (x - mean);
  double tolerance = options.tolerance * var / double(n);
  std::vector<int64_t> bounds(centres.size() + 1);
  for (int iter = 0; iter < options.maxIterations; ++iter) {
    bounds.front() = 0;
    bounds.back() = n;
    for (size_t c = 0; c + 1 < centres.size(); ++c) {
      double mid = 0.5 * (centres[c] + centres[c + 1]);
      bounds[c + 1] =
          int64_t(std::upper_bound(v.x.begin(), v.x.end(), mid) - v.x.begin());
    }
    double shift = 0;
    for (size_t c = 0; c < centres.size(); ++c) {
      int64_t i = bounds[c], j = bounds[c + 1];
      double w = v.p0[size_t(j)] - v.p0[size_t(i)];
      if (w <= 0)
        continue; // an empty (or weightless) cluster keeps its centre
      double next = v.mean + (v.p1[size_t(j)] - v.p1[size_t(i)]) / w;
      shift += (next - centres[c]) * (next - centres[c]);
      centres[c] = next;
    }
    std::sort(centres.begin(), centres.end());
    if (shift <= tolerance)
      break;
  }
  centres.resize(size_t(k), std::numeric_limits<double>::quiet_NaN());
  return finishCentroids(centres);
}

} // namespace

double nearestCentroidCost(const float *x, const float *weights, int64_t n,
                           const std::vector<float> &centroids,
                           uint8_t *labels) {
  assert(!centroids.empty() && "no centroids");
  double cost = 0;
  for (int64_t i = 0; i < n; ++i) {
    auto it = std::lower_bound(centroids.begin(), centroids.end(), x[i]);
    size_t j = size_t(it - centroids.begin());
    if (j == centroids.size() ||
        (j > 0 && x[i] - centroids[j - 1] <= centroids[j] - x[i]))
      --j;
    double d = double(x[i]) - double(centroids[j]);
    cost += (weights ? double(weights[i]) : 1.0) * d * d;
    if (labels)
      labels[i] = uint8_t(j);
  }
  return cost;
}

KMeansResult weightedKMeans1D(const float *x, const float *weights, int64_t n,
                              int k, const KMeansOptions &options) {
  assert(k >= 1 && k <= 256 && "k out of range");
  KMeansResult result;
  if (n == 0) {
    result.centroids.assign(size_t(k), 0.0f);
    return result;
  }
  SortedValues sorted(x, weights, n);
  result.centroids = options.solver == KMeansSolver::Exact
                         ? exactCentroids(sorted, k)
                         : lloydCentroids(sorted, k, options);
  double total = 0;
  if (weights)
    for (int64_t i = 0; i < n; ++i)
      total += weights[i];
  result.labels.resize(size_t(n));
  result.cost = nearestCentroidCost(x, total > 0 ? weights : nullptr, n,
                                    result.centroids, result.labels.data());
  return result;
}

} // namespace qforge::quant
