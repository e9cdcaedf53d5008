//===- QuantTestUtil.h - Shared helpers of the lib/quant tests --*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_TEST_UNIT_QUANTTESTUTIL_H
#define QFORGE_TEST_UNIT_QUANTTESTUTIL_H

#include "qforge/Quant/Packing.h"
#include "qforge/Quant/RTN.h"
#include "qforge/Quant/Scheme.h"

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

namespace qforge::quant::test {

/// All codes of `q`, unpacked row-major.
inline std::vector<uint8_t> codesOf(const AffineQuantized &q) {
  return unpack(q.codes.data(), q.rows, q.cols, q.scheme.bits);
}

/// Whether `a` and `b` have the same shape, codes and parameters.
inline bool sameQuantized(const AffineQuantized &a, const AffineQuantized &b) {
  return a.rows == b.rows && a.cols == b.cols && a.codes == b.codes &&
         a.scales == b.scales && a.zeroPoints == b.zeroPoints;
}

/// A rows x cols matrix of N(0, 1) entries.
inline std::vector<float> gaussianMatrix(int64_t rows, int64_t cols,
                                         unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> m(static_cast<size_t>(rows * cols));
  for (float &x : m)
    x = normal(rng);
  return m;
}

/// Calibration activations [rows, k] shaped like a transformer's: X = Z A
/// with Z ~ N(0, 1) and a random mixing A (correlated channels), plus a few
/// channels (every 37th) of large magnitude.
inline std::vector<float> correlatedActivations(int64_t rows, int64_t k,
                                                unsigned seed) {
  std::vector<float> z = gaussianMatrix(rows, k, seed);
  std::vector<float> a = gaussianMatrix(k, k, seed + 1);
  std::vector<float> x(static_cast<size_t>(rows * k), 0.0f);
  float mix = 1.0f / std::sqrt(static_cast<float>(k));
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t p = 0; p < k; ++p) {
      float zp = z[t * k + p] * mix;
      for (int64_t i = 0; i < k; ++i)
        x[t * k + i] += zp * a[p * k + i];
    }
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t i = 0; i < k; i += 37)
      x[t * k + i] *= 20.0f;
  return x;
}

/// ||X W^T - X A^T|| / ||X W^T|| for weights w and approx (n x k) and
/// activations x ([rows, k]), all row-major.
inline double outputRelativeError(const float *x, int64_t rows, int64_t k,
                                  const float *w, const float *approx,
                                  int64_t n) {
  double diff = 0.0, norm = 0.0;
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t o = 0; o < n; ++o) {
      double y = 0.0, yHat = 0.0;
      for (int64_t i = 0; i < k; ++i) {
        y += static_cast<double>(x[t * k + i]) * w[o * k + i];
        yHat += static_cast<double>(x[t * k + i]) * approx[o * k + i];
      }
      diff += (y - yHat) * (y - yHat);
      norm += y * y;
    }
  return std::sqrt(diff / norm);
}

inline std::string describe(const Scheme &s) {
  const char *g = s.granularity == Granularity::PerTensor    ? "per-tensor"
                  : s.granularity == Granularity::PerChannel ? "per-channel"
                                                             : "group";
  return std::to_string(s.bits) + "-bit " + g + " " +
         std::to_string(s.groupSize) +
         (s.symmetric ? " symmetric" : " zero-point");
}

/// Every bit width and granularity, both forms (groups of 8 and 16).
inline std::vector<Scheme> allSchemes() {
  std::vector<Scheme> schemes;
  for (unsigned bits : {2u, 3u, 4u, 8u})
    for (bool symmetric : {true, false}) {
      schemes.push_back(Scheme::perTensor(bits, symmetric));
      schemes.push_back(Scheme::perChannel(bits, symmetric));
      schemes.push_back(Scheme::grouped(bits, 8, symmetric));
      schemes.push_back(Scheme::grouped(bits, 16, symmetric));
    }
  return schemes;
}

} // namespace qforge::quant::test

#endif // QFORGE_TEST_UNIT_QUANTTESTUTIL_H
