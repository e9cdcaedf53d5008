//===- AWQ.cpp - Activation-aware weight quantization -----------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//

#include "qforge/Quant/AWQ.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

namespace qforge::quant {

std::vector<float> awqScales(const std::vector<float> &meanAbs, float alpha) {
  std::vector<float> s(meanAbs.size());
  for (size_t k = 0; k < s.size(); ++k)
    s[k] = std::max(std::pow(meanAbs[k], alpha), 1e-4f);
  if (s.empty())
    return s;
  auto [lo, hi] = std::minmax_element(s.begin(), s.end());
  float norm = std::sqrt(*lo * *hi);
  for (float &v : s)
    v /= norm;
  return s;
}

std::vector<float> awqReconstruct(const AffineQuantized &q,
                                  const std::vector<float> &scales) {
  std::vector<float> w = dequantize(q);
  for (int64_t n = 0; n < q.rows; ++n)
    for (int64_t k = 0; k < q.cols; ++k)
      w[n * q.cols + k] /= scales[k];
  return w;
}

double outputSquaredError(const float *ref, const float *approx, int64_t rows,
                          int64_t k, const double *gram) {
  std::vector<double> d(static_cast<size_t>(k));
  double total = 0.0;
  for (int64_t n = 0; n < rows; ++n) {
    for (int64_t i = 0; i < k; ++i)
      d[i] = static_cast<double>(ref[n * k + i]) -
             static_cast<double>(approx[n * k + i]);
    for (int64_t i = 0; i < k; ++i) {
      if (d[i] == 0.0)
        continue;
      const double *g = gram + i * k;
      double dot = 0.0;
      for (int64_t j = 0; j < k; ++j)
        dot += g[j] * d[j];
      total += d[i] * dot;
    }
  }
  return total;
}

AffineQuantized quantizeScaled(const float *scaled, int64_t rows, int64_t k,
                               const Scheme &scheme, const double *scaledGram,
                               bool clip, const ClipOptions &clipOptions) {
  AffineQuantized rtn = quantizeRTN(scaled, rows, k, scheme);
  if (!clip)
    return rtn;
  ClipWeighting weighting;
  weighting.gram = scaledGram;
  AffineQuantized clipped =
      quantizeRTNClipped(scaled, rows, k, scheme, clipOptions, weighting);
  // Groups are clipped one at a time, ignoring the cross-group terms of the
  // output error; keep the clipped matrix only if the whole is better.
  auto error = [&](const AffineQuantized &q) {
    std::vector<float> approx = dequantize(q);
    return outputSquaredError(scaled, approx.data(), rows, k, scaledGram);
  };
  return error(clipped) < error(rtn) ? clipped : rtn;
}

namespace {

/// W diag(s), row-major rows x k.
std::vector<float> scaleColumns(const float *w, int64_t rows, int64_t k,
                                const std::vector<float> &s) {
  std::vector<float> out(w, w + rows * k);
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t i = 0; i < k; ++i)
      out[n * k + i] *= s[i];
  return out;
}

} // namespace

AWQResult searchAWQ(const std::vector<AWQMember> &members,
                    const ActivationStats &stats, const Scheme &scheme,
                    const AWQOptions &options) {
  assert(scheme.validate().empty() && "invalid quantization scheme");
  assert(options.gridSize >= 1 && stats.rows() > 0);
  const int64_t K = stats.channels();
  const std::vector<double> gram = stats.gram();
  const std::vector<float> meanAbs = stats.meanAbs();
  int64_t outputs = 0;
  for (const AWQMember &m : members)
    outputs += m.rows;
  const double norm =
      static_cast<double>(stats.rows()) * static_cast<double>(outputs);

  // ||X W_m^T - X W^_m^T||^2 of member m quantized as Q(W diag(s)).
  auto memberError = [&](size_t m, const std::vector<float> &s,
                         const AffineQuantized &quantized) {
    std::vector<float> approx = awqReconstruct(quantized, s);
    return outputSquaredError(members[m].weights, approx.data(),
                              members[m].rows, K, gram.data());
  };
  auto lossOf = [&](const std::vector<float> &s,
                    const std::vector<AffineQuantized> &quantized) {
    double total = 0.0;
    for (size_t m = 0; m < members.size(); ++m)
      total += memberError(m, s, quantized[m]);
    return norm > 0.0 ? total / norm : 0.0;
  };
  auto quantizeAll = [&](const std::vector<float> &s) {
    std::vector<AffineQuantized> quantized;
    for (const AWQMember &m : members) {
      std::vector<float> scaled = scaleColumns(m.weights, m.rows, K, s);
      quantized.push_back(quantizeRTN(scaled.data(), m.rows, K, scheme));
    }
    return quantized;
  };

  AWQResult result;
  double best = std::numeric_limits<double>::infinity();
  for (int i = 0; i < options.gridSize; ++i) {
    float alpha = static_cast<float>(i) / static_cast<float>(options.gridSize);
    std::vector<float> s = awqScales(meanAbs, alpha);
    std::vector<AffineQuantized> quantized = quantizeAll(s);
    double loss = lossOf(s, quantized);
    result.lossByAlpha.push_back(loss);
    if (i == 0)
      result.rtnLoss = loss;
    if (loss < best) {
      best = loss;
      result.alpha = alpha;
      result.scales = std::move(s);
      result.quantized = std::move(quantized);
    }
  }
  result.scaledLoss = best;

  result.finalLoss = best;
  if (!options.clip)
    return result;
  // The scaled layer's input is X diag(s)^-1.
  std::vector<double> scaledGram(gram);
  for (int64_t i = 0; i < K; ++i)
    for (int64_t j = 0; j < K; ++j)
      scaledGram[i * K + j] /= static_cast<double>(result.scales[i]) *
                               static_cast<double>(result.scales[j]);
  for (size_t m = 0; m < members.size(); ++m) {
    if (!members[m].clip)
      continue;
    std::vector<float> scaled =
        scaleColumns(members[m].weights, members[m].rows, K, result.scales);
    result.quantized[m] =
        quantizeScaled(scaled.data(), members[m].rows, K, scheme,
                       scaledGram.data(), true, options.clipOptions);
  }
  result.finalLoss = lossOf(result.scales, result.quantized);
  return result;
}

} // namespace qforge::quant
