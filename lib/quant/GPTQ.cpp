//===- GPTQ.cpp - GPTQ weight quantization ----------------------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//

#include "qforge/Quant/GPTQ.h"
#include "qforge/Quant/Packing.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <numeric>
#include <sstream>

namespace qforge::quant {

namespace {

/// In-place lower Cholesky factor of the symmetric k x k matrix `a`
/// (a = L L^T; only the lower triangle is read, the upper is zeroed).
/// Returns false when a pivot is not positive (or not finite).
bool choleskyLower(std::vector<double> &a, int64_t k) {
  for (int64_t j = 0; j < k; ++j) {
    double *rowJ = a.data() + j * k;
    double pivot = rowJ[j];
    for (int64_t p = 0; p < j; ++p)
      pivot -= rowJ[p] * rowJ[p];
    if (!(pivot > 0.0) || !std::isfinite(pivot))
      return false;
    double diag = std::sqrt(pivot);
    rowJ[j] = diag;
    for (int64_t i = j + 1; i < k; ++i) {
      double *rowI = a.data() + i * k;
      double sum = rowI[j];
      for (int64_t p = 0; p < j; ++p)
        sum -= rowI[p] * rowJ[p];
      rowI[j] = sum / diag;
    }
    for (int64_t i = j + 1; i < k; ++i)
      rowJ[i] = 0.0;
  }
  return true;
}

} // namespace

bool upperCholeskyOfInverse(const double *a, int64_t k,
                            std::vector<double> &u) {
  // a = L L^T  =>  a^-1 = L^-T L^-1 = M^T M with M = L^-1 lower triangular.
  std::vector<double> l(a, a + k * k);
  if (!choleskyLower(l, k))
    return false;
  std::vector<double> m(static_cast<size_t>(k * k), 0.0);
  for (int64_t j = 0; j < k; ++j) {
    m[j * k + j] = 1.0 / l[j * k + j];
    for (int64_t i = j + 1; i < k; ++i) {
      double sum = 0.0;
      for (int64_t p = j; p < i; ++p)
        sum += l[i * k + p] * m[p * k + j];
      m[i * k + j] = -sum / l[i * k + i];
    }
  }
  // inverse[i][j] = sum_p M[p][i] M[p][j] (p >= max(i, j)), lower triangle.
  std::vector<double> inverse(static_cast<size_t>(k * k), 0.0);
  for (int64_t p = 0; p < k; ++p) {
    const double *rowP = m.data() + p * k;
    for (int64_t i = 0; i <= p; ++i) {
      if (rowP[i] == 0.0)
        continue;
      double *out = inverse.data() + i * k;
      for (int64_t j = 0; j <= i; ++j)
        out[j] += rowP[i] * rowP[j];
    }
  }
  // a^-1 = L2 L2^T  =>  U = L2^T.
  if (!choleskyLower(inverse, k))
    return false;
  u.assign(static_cast<size_t>(k * k), 0.0);
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j <= i; ++j)
      u[j * k + i] = inverse[i * k + j];
  return true;
}

GPTQResult quantizeGPTQ(const float *w, int64_t rows, int64_t cols,
                        const double *hessian, const Scheme &scheme,
                        const GPTQOptions &options) {
  assert(scheme.validate().empty() && "invalid quantization scheme");
  assert(options.blockSize > 0 && "block size must be positive");
  const int64_t N = rows, K = cols;
  GPTQResult result;

  // Dead inputs: H_kk = 1 and W[:, k] = 0.
  std::vector<double> h(hessian, hessian + K * K);
  std::vector<float> w0(w, w + N * K);
  for (int64_t k = 0; k < K; ++k) {
    if (h[k * K + k] != 0.0)
      continue;
    h[k * K + k] = 1.0;
    for (int64_t n = 0; n < N; ++n)
      w0[n * K + k] = 0.0f;
  }

  result.order.resize(static_cast<size_t>(K));
  std::iota(result.order.begin(), result.order.end(), 0);
  if (options.actOrder)
    std::stable_sort(
        result.order.begin(), result.order.end(),
        [&](int64_t a, int64_t b) { return h[a * K + a] > h[b * K + b]; });
  const std::vector<int64_t> &order = result.order;

  // H in quantization order, damped until it factorizes.
  std::vector<double> hp(static_cast<size_t>(K * K));
  double meanDiag = 0.0;
  for (int64_t i = 0; i < K; ++i) {
    for (int64_t j = 0; j < K; ++j)
      hp[i * K + j] = h[order[i] * K + order[j]];
    meanDiag += hp[i * K + i];
  }
  meanDiag = K > 0 ? meanDiag / static_cast<double>(K) : 1.0;
  if (!(meanDiag > 0.0) || !std::isfinite(meanDiag)) {
    result.message = "GPTQ: the Hessian's mean diagonal is not positive and "
                     "finite; the Hessian is not positive definite";
    return result;
  }
  std::vector<double> u;
  double damping = options.percDamp * meanDiag;
  for (int attempt = 0;; ++attempt) {
    std::vector<double> damped(hp);
    for (int64_t i = 0; i < K; ++i)
      damped[i * K + i] += damping;
    if (upperCholeskyOfInverse(damped.data(), K, u))
      break;
    if (attempt == options.maxDampingRetries) {
      std::ostringstream os;
      os << "GPTQ: the Hessian is not positive definite even with damping "
         << damping << " (" << attempt << " increases)";
      result.message = os.str();
      return result;
    }
    damping = damping > 0.0 ? damping * 10.0 : 0.01 * meanDiag;
    result.dampingRetries = attempt + 1;
  }
  result.damping = damping;
  if (result.dampingRetries > 0) {
    std::ostringstream os;
    os << "GPTQ: the Hessian was not positive definite; damping raised to "
       << damping << " after " << result.dampingRetries << " increases";
    result.message = os.str();
  }

  AffineQuantized q = makeQuantized(N, K, scheme);
  const int64_t groupSize = scheme.groupSize;
  const bool dynamicGroups = scheme.granularity == Granularity::Group &&
                             !options.staticGroups && !options.actOrder;
  if (!dynamicGroups)
    fillRTNParams(q, w0.data());
  int64_t blockSize = options.blockSize;
  if (dynamicGroups)
    blockSize = (blockSize + groupSize - 1) / groupSize * groupSize;

  // The working copy of W, columns in quantization order.
  std::vector<double> wp(static_cast<size_t>(N * K));
  for (int64_t n = 0; n < N; ++n)
    for (int64_t p = 0; p < K; ++p)
      wp[n * K + p] = static_cast<double>(w0[n * K + order[p]]);

  std::vector<uint8_t> codes(static_cast<size_t>(N * K));
  result.reconstructed.assign(static_cast<size_t>(N * K), 0.0f);
  std::vector<float> groupValues(dynamicGroups ? static_cast<size_t>(groupSize)
                                               : 0);
  std::vector<double> errors;
  const int64_t groups = scheme.numGroups(K);
  double loss = 0.0;
  for (int64_t b0 = 0; b0 < K; b0 += blockSize) {
    const int64_t b1 = std::min(b0 + blockSize, K), width = b1 - b0;
    errors.assign(static_cast<size_t>(N * width), 0.0);
    for (int64_t p = b0; p < b1; ++p) {
      const int64_t k = order[p];
      if (dynamicGroups && k % groupSize == 0) {
        int64_t count = std::min(groupSize, K - k);
        for (int64_t n = 0; n < N; ++n) {
          for (int64_t i = 0; i < count; ++i)
            groupValues[i] = static_cast<float>(wp[n * K + k + i]);
          q.setParams(n * groups + k / groupSize,
                      computeGroupParams(groupValues.data(), count, scheme));
        }
      }
      const double *uRow = u.data() + p * K;
      const double d = uRow[p];
      for (int64_t n = 0; n < N; ++n) {
        double *row = wp.data() + n * K;
        GroupParams gp = q.params(n, k);
        unsigned code = quantizeValue(static_cast<float>(row[p]), gp.scale,
                                      gp.zero, scheme);
        float decoded = dequantizeValue(code, gp.scale, gp.zero);
        codes[n * K + k] = static_cast<uint8_t>(code);
        result.reconstructed[n * K + k] = decoded;
        double e = (row[p] - static_cast<double>(decoded)) / d;
        loss += 0.5 * e * e;
        errors[n * width + (p - b0)] = e;
        for (int64_t c = p + 1; c < b1; ++c)
          row[c] -= e * uRow[c];
      }
    }
    // The block's errors reach the later columns in one batch.
    for (int64_t n = 0; n < N; ++n) {
      double *row = wp.data() + n * K;
      for (int64_t j = 0; j < width; ++j) {
        double e = errors[n * width + j];
        if (e == 0.0)
          continue;
        const double *uRow = u.data() + (b0 + j) * K;
        for (int64_t c = b1; c < K; ++c)
          row[c] -= e * uRow[c];
      }
    }
  }

  q.codes = pack(codes.data(), N, K, scheme.bits);
  result.quantized = std::move(q);
  result.loss = loss;
  result.ok = true;
  return result;
}

} // namespace qforge::quant
