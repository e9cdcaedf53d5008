//===- Clip.cpp - Round-to-nearest with a clipping search -------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//

#include "qforge/Quant/Clip.h"

#include <cassert>
#include <cmath>
#include <limits>

namespace qforge::quant {

std::vector<float> clipGrid(const ClipOptions &options) {
  assert(options.step > 0.0f && options.maxShrink >= 0.0f &&
         options.maxShrink < 1.0f && "invalid clipping grid");
  auto steps = static_cast<int64_t>(
      std::floor(static_cast<double>(options.maxShrink) / options.step + 1e-6));
  std::vector<float> grid;
  for (int64_t i = 0; i <= steps; ++i)
    grid.push_back(static_cast<float>(
        1.0 - static_cast<double>(i) * static_cast<double>(options.step)));
  return grid;
}

namespace {

/// The weighted squared error of one row's slice [colBegin, colEnd) whose
/// weight errors are `d` (colEnd - colBegin values).
double sliceError(const double *d, int64_t colBegin, int64_t colEnd,
                  int64_t cols, const ClipWeighting &weighting) {
  int64_t count = colEnd - colBegin;
  double error = 0.0;
  if (weighting.gram) {
    // d G_gg d^T over the slice's block of the Gram matrix.
    for (int64_t i = 0; i < count; ++i) {
      if (d[i] == 0.0)
        continue;
      const double *g = weighting.gram + (colBegin + i) * cols + colBegin;
      double dot = 0.0;
      for (int64_t j = 0; j < count; ++j)
        dot += g[j] * d[j];
      error += d[i] * dot;
    }
    return error;
  }
  for (int64_t i = 0; i < count; ++i) {
    double a =
        weighting.channelImportance
            ? static_cast<double>(weighting.channelImportance[colBegin + i])
            : 1.0;
    error += a * d[i] * d[i];
  }
  return error;
}

} // namespace

AffineQuantized quantizeRTNClipped(const float *w, int64_t rows, int64_t cols,
                                   const Scheme &scheme,
                                   const ClipOptions &options,
                                   const ClipWeighting &weighting,
                                   std::vector<float> *chosen) {
  AffineQuantized q = makeQuantized(rows, cols, scheme);
  std::vector<float> grid = clipGrid(options);
  if (chosen)
    chosen->assign(q.scales.size(), 1.0f);
  std::vector<double> d(static_cast<size_t>(cols));
  int64_t groups = scheme.numGroups(cols);
  for (int64_t r = 0; r < scheme.scaleRows(rows); ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      GroupRegion region = groupRegion(scheme, rows, cols, r, g);
      ValueRange range = regionRange(w, cols, region);
      double bestError = std::numeric_limits<double>::infinity();
      GroupParams best{1.0f, 0};
      float bestFactor = 1.0f;
      for (float c : grid) {
        GroupParams p =
            computeGroupParams({range.lo * c, range.hi * c}, scheme);
        double error = 0.0;
        for (int64_t n = region.rowBegin;
             n < region.rowEnd && error < bestError; ++n) {
          for (int64_t k = region.colBegin; k < region.colEnd; ++k) {
            float x = w[n * cols + k];
            float decoded = dequantizeValue(
                quantizeValue(x, p.scale, p.zero, scheme), p.scale, p.zero);
            d[k - region.colBegin] =
                static_cast<double>(x) - static_cast<double>(decoded);
          }
          error += sliceError(d.data(), region.colBegin, region.colEnd, cols,
                              weighting);
        }
        if (error < bestError) {
          bestError = error;
          best = p;
          bestFactor = c;
        }
      }
      q.setParams(r * groups + g, best);
      if (chosen)
        (*chosen)[r * groups + g] = bestFactor;
    }
  }
  encodeWithParams(q, w);
  return q;
}

} // namespace qforge::quant
