//===- Hessian.cpp - Calibration statistics of a linear's input -*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//

#include "qforge/Quant/Hessian.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace qforge::quant {

ActivationStats::ActivationStats(int64_t channels)
    : channels_(channels),
      upper_(static_cast<size_t>(channels * channels), 0.0),
      sumAbs_(static_cast<size_t>(channels), 0.0) {}

ActivationStats
ActivationStats::fromSummary(int64_t rows,
                             const std::vector<double> &gramOverRows,
                             const std::vector<float> &meanAbs) {
  const int64_t K = static_cast<int64_t>(meanAbs.size());
  assert(gramOverRows.size() == static_cast<size_t>(K * K) && rows >= 0);
  ActivationStats s(K);
  s.rows_ = rows;
  const double n = static_cast<double>(rows);
  for (int64_t i = 0; i < K; ++i) {
    s.sumAbs_[i] = meanAbs[i] * n;
    for (int64_t j = i; j < K; ++j)
      s.upper_[i * K + j] = gramOverRows[i * K + j] * n;
  }
  return s;
}

void ActivationStats::add(const float *x, int64_t rows, int64_t k) {
  assert(k == channels_ && "channel count mismatch");
  (void)k;
  const int64_t K = channels_;
  std::vector<double> row(static_cast<size_t>(K));
  for (int64_t t = 0; t < rows; ++t) {
    for (int64_t i = 0; i < K; ++i) {
      row[i] = static_cast<double>(x[t * K + i]);
      sumAbs_[i] += std::fabs(row[i]);
    }
    // The Gram matrix is symmetric: accumulate j >= i only.
    for (int64_t i = 0; i < K; ++i) {
      double xi = row[i];
      if (xi == 0.0)
        continue;
      double *out = upper_.data() + i * K;
      for (int64_t j = i; j < K; ++j)
        out[j] += xi * row[j];
    }
  }
  rows_ += rows;
}

std::vector<double> ActivationStats::gram() const {
  const int64_t K = channels_;
  std::vector<double> g(upper_);
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < i; ++j)
      g[i * K + j] = upper_[j * K + i];
  return g;
}

std::vector<double> ActivationStats::hessian(double factor) const {
  std::vector<double> h = gram();
  double f = rows_ > 0 ? factor / static_cast<double>(rows_) : 0.0;
  for (double &v : h)
    v *= f;
  return h;
}

std::vector<float> ActivationStats::meanAbs() const {
  std::vector<float> m(static_cast<size_t>(channels_), 0.0f);
  if (rows_ > 0)
    for (int64_t i = 0; i < channels_; ++i)
      m[i] = static_cast<float>(sumAbs_[i] / static_cast<double>(rows_));
  return m;
}

std::vector<float> ActivationStats::meanSquare() const {
  std::vector<float> m(static_cast<size_t>(channels_), 0.0f);
  if (rows_ > 0)
    for (int64_t i = 0; i < channels_; ++i)
      m[i] = static_cast<float>(upper_[i * channels_ + i] /
                                static_cast<double>(rows_));
  return m;
}

double relativeOutputError(const float *ref, const float *approx, int64_t rows,
                           int64_t k, const double *gram) {
  std::vector<double> w(static_cast<size_t>(k)), d(static_cast<size_t>(k));
  double error = 0.0, norm = 0.0;
  for (int64_t n = 0; n < rows; ++n) {
    for (int64_t i = 0; i < k; ++i) {
      w[i] = static_cast<double>(ref[n * k + i]);
      d[i] = w[i] - static_cast<double>(approx[n * k + i]);
    }
    // w G w^T and d G d^T, reading each row of G once.
    for (int64_t i = 0; i < k; ++i) {
      const double *g = gram + i * k;
      double gw = 0.0, gd = 0.0;
      for (int64_t j = 0; j < k; ++j) {
        gw += g[j] * w[j];
        gd += g[j] * d[j];
      }
      norm += w[i] * gw;
      error += d[i] * gd;
    }
  }
  return norm > 0.0 ? std::sqrt(std::max(error, 0.0) / norm) : 0.0;
}

} // namespace qforge::quant
