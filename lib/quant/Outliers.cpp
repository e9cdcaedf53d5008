//===- Outliers.cpp - Dense-and-sparse decomposition ------------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//

#include "qforge/Quant/Outliers.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numeric>

namespace qforge::quant {

double FenceSummary::threshold(double r) const {
  double iqr = q3 - q1;
  return std::max(std::fabs(q1 - r * iqr), std::fabs(q3 + r * iqr));
}

double FenceSummary::estimatedAbove(double r) const {
  if (sampleAbs.empty())
    return 0;
  double t = threshold(r);
  auto above = sampleAbs.end() -
               std::upper_bound(sampleAbs.begin(), sampleAbs.end(), float(t));
  return double(above) * double(count) / double(sampleAbs.size());
}

FenceSummary summarizeWeights(const float *w, int64_t n,
                              const uint8_t *excluded, size_t maxSample) {
  std::vector<float> kept;
  kept.reserve(size_t(n));
  for (int64_t i = 0; i < n; ++i)
    if (!excluded || !excluded[i])
      kept.push_back(w[i]);
  FenceSummary s;
  s.count = int64_t(kept.size());
  if (kept.empty())
    return s;
  auto quantile = [&](double p) {
    auto at = kept.begin() + int64_t(p * double(kept.size() - 1));
    std::nth_element(kept.begin(), at, kept.end());
    return double(*at);
  };
  s.q1 = quantile(0.25);
  s.q3 = quantile(0.75);
  size_t stride =
      std::max<size_t>(1, (kept.size() + maxSample - 1) / maxSample);
  for (size_t i = 0; i < kept.size(); i += stride)
    s.sampleAbs.push_back(std::fabs(kept[i]));
  std::sort(s.sampleAbs.begin(), s.sampleAbs.end());
  return s;
}

double solveFenceRange(const std::vector<FenceSummary> &matrices,
                       int64_t totalWeights, double fraction) {
  double target = fraction * double(totalWeights);
  auto outliers = [&](double r) {
    double sum = 0;
    for (const FenceSummary &m : matrices)
      sum += m.estimatedAbove(r);
    return sum;
  };
  if (outliers(0) <= target)
    return 0;
  double lo = 0, hi = 1;
  while (outliers(hi) > target && hi < 1e6)
    hi *= 2;
  for (int i = 0; i < 60; ++i) {
    double mid = 0.5 * (lo + hi);
    (outliers(mid) > target ? lo : hi) = mid;
  }
  return hi;
}

int64_t markOutsideFence(const float *w, int64_t n, double threshold,
                         uint8_t *mask) {
  // In float, as estimatedAbove compares.
  const float t = float(threshold);
  int64_t marked = 0;
  for (int64_t i = 0; i < n; ++i)
    if (!mask[i] && std::fabs(w[i]) > t) {
      mask[i] = 1;
      ++marked;
    }
  return marked;
}

int64_t markMostSensitive(const float *sensitivity, int64_t n, double fraction,
                          uint8_t *mask) {
  int64_t count =
      std::min<int64_t>(n, int64_t(std::llround(fraction * double(n))));
  if (count <= 0)
    return 0;
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), int64_t(0));
  // Largest first; equal sensitivities in index order, so the choice is
  // deterministic.
  std::nth_element(order.begin(), order.begin() + (count - 1), order.end(),
                   [&](int64_t a, int64_t b) {
                     return sensitivity[a] > sensitivity[b] ||
                            (sensitivity[a] == sensitivity[b] && a < b);
                   });
  int64_t marked = 0;
  for (int64_t i = 0; i < count; ++i)
    if (!mask[order[size_t(i)]]) {
      mask[order[size_t(i)]] = 1;
      ++marked;
    }
  return marked;
}

SparseRows extractMarked(float *w, int64_t rows, int64_t cols,
                         const uint8_t *mask) {
  SparseRows s;
  s.rows = rows;
  s.cols = cols;
  s.rowPtr.assign(1, 0);
  for (int64_t n = 0; n < rows; ++n) {
    for (int64_t c = 0; c < cols; ++c)
      if (mask[n * cols + c]) {
        s.colIdx.push_back(int32_t(c));
        s.values.push_back(w[n * cols + c]);
        w[n * cols + c] = 0.0f;
      }
    s.rowPtr.push_back(int32_t(s.values.size()));
  }
  return s;
}

void storeResiduals(SparseRows &s, const float *decoded) {
  for (int64_t n = 0; n < s.rows; ++n)
    for (int32_t j = s.rowPtr[size_t(n)]; j < s.rowPtr[size_t(n) + 1]; ++j)
      s.values[size_t(j)] -= decoded[n * s.cols + s.colIdx[size_t(j)]];
}

void addSparse(const SparseRows &s, float *dense) {
  for (int64_t n = 0; n < s.rows; ++n)
    for (int32_t j = s.rowPtr[size_t(n)]; j < s.rowPtr[size_t(n) + 1]; ++j)
      dense[n * s.cols + s.colIdx[size_t(j)]] += s.values[size_t(j)];
}

std::vector<uint8_t> SparseRows::positions() const {
  std::vector<uint8_t> mask(size_t(rows * cols), 0);
  for (int64_t n = 0; n < rows; ++n)
    for (int32_t j = rowPtr[size_t(n)]; j < rowPtr[size_t(n) + 1]; ++j)
      mask[size_t(n * cols + colIdx[size_t(j)])] = 1;
  return mask;
}

int64_t packedBytes(const SparseRows &s) {
  return int64_t(s.rowPtr.size() * sizeof(int32_t) +
                 s.colIdx.size() * sizeof(int32_t) +
                 s.values.size() * sizeof(float));
}

} // namespace qforge::quant
