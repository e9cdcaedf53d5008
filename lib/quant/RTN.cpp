//===- RTN.cpp - Affine quantization and round-to-nearest -------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//

#include "qforge/Quant/RTN.h"
#include "qforge/Quant/Packing.h"

#include <algorithm>
#include <cassert>
#include <cmath>
#include <limits>

namespace qforge::quant {

GroupParams computeGroupParams(const float *groupValues, int64_t count,
                               const Scheme &scheme) {
  assert(scheme.validate().empty() && "invalid quantization scheme");
  float scale;
  int zero;
  if (scheme.symmetric) {
    float maxAbs = 0.0f;
    for (int64_t i = 0; i < count; ++i)
      maxAbs = std::max(maxAbs, std::fabs(groupValues[i]));
    scale = maxAbs / static_cast<float>(scheme.symmetricZero() - 1);
    zero = scheme.symmetricZero();
  } else {
    // The range always contains 0 so that 0 is exactly representable.
    float lo = 0.0f, hi = 0.0f;
    for (int64_t i = 0; i < count; ++i) {
      lo = std::min(lo, groupValues[i]);
      hi = std::max(hi, groupValues[i]);
    }
    scale = (hi - lo) / static_cast<float>(scheme.maxCode());
    zero = 0;
    if (scale > 0.0f && std::isfinite(scale)) {
      float z = std::round(-lo / scale);
      zero = static_cast<int>(
          std::clamp(z, 0.0f, static_cast<float>(scheme.maxCode())));
    }
  }
  // An all-zero group (or one whose scale underflows) keeps division safe;
  // every weight then rounds to the zero point and decodes to 0.
  if (!(scale > 0.0f) || !std::isfinite(scale))
    scale = 1.0f;
  return {scale, zero};
}

unsigned quantizeValue(float w, float scale, int zero, const Scheme &scheme) {
  float r = std::round(w / scale);
  if (scheme.symmetric) {
    // q = clamp(round(w / scale), -qmax, qmax), u = q + 2^(bits-1).
    float qMax = static_cast<float>(scheme.symmetricZero() - 1);
    float q = std::clamp(r, -qMax, qMax);
    return static_cast<unsigned>(static_cast<int>(q) + zero);
  }
  float u = std::clamp(r + static_cast<float>(zero), 0.0f,
                       static_cast<float>(scheme.maxCode()));
  return static_cast<unsigned>(u);
}

GroupParams AffineQuantized::params(int64_t row, int64_t col) const {
  int64_t index = scheme.paramIndex(row, col, cols);
  int zero = scheme.symmetric ? scheme.symmetricZero()
                              : static_cast<int>(zeroPoints[index]);
  return {scales[index], zero};
}

AffineQuantized quantizeRTN(const float *w, int64_t rows, int64_t cols,
                            const Scheme &scheme) {
  assert(scheme.validate().empty() && "invalid quantization scheme");
  AffineQuantized q;
  q.rows = rows;
  q.cols = cols;
  q.scheme = scheme;

  // Every group is a contiguous range of W: the whole matrix, one row, or a
  // slice of one row.
  int64_t scaleRows = scheme.scaleRows(rows);
  int64_t groups = scheme.numGroups(cols);
  q.scales.resize(static_cast<size_t>(scaleRows * groups));
  if (!scheme.symmetric)
    q.zeroPoints.resize(q.scales.size());
  for (int64_t r = 0; r < scaleRows; ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      const float *begin = w;
      int64_t count = 0;
      switch (scheme.granularity) {
      case Granularity::PerTensor:
        begin = w;
        count = rows * cols;
        break;
      case Granularity::PerChannel:
        begin = w + r * cols;
        count = cols;
        break;
      case Granularity::Group:
        begin = w + r * cols + g * scheme.groupSize;
        count = std::min(scheme.groupSize, cols - g * scheme.groupSize);
        break;
      }
      GroupParams p = computeGroupParams(begin, count, scheme);
      q.scales[r * groups + g] = p.scale;
      if (!scheme.symmetric)
        q.zeroPoints[r * groups + g] = static_cast<uint8_t>(p.zero);
    }
  }

  int64_t words = wordsPerRow(cols, scheme.bits);
  q.codes.resize(static_cast<size_t>(rows * words));
  std::vector<uint8_t> rowCodes(static_cast<size_t>(cols));
  for (int64_t n = 0; n < rows; ++n) {
    for (int64_t k = 0; k < cols; ++k) {
      GroupParams p = q.params(n, k);
      rowCodes[k] = static_cast<uint8_t>(
          quantizeValue(w[n * cols + k], p.scale, p.zero, scheme));
    }
    packRow(rowCodes.data(), cols, scheme.bits, q.codes.data() + n * words);
  }
  return q;
}

std::vector<float> dequantize(const AffineQuantized &q) {
  std::vector<float> w(static_cast<size_t>(q.rows * q.cols));
  int64_t words = wordsPerRow(q.cols, q.scheme.bits);
  std::vector<uint8_t> rowCodes(static_cast<size_t>(q.cols));
  for (int64_t n = 0; n < q.rows; ++n) {
    unpackRow(q.codes.data() + n * words, q.cols, q.scheme.bits,
              rowCodes.data());
    for (int64_t k = 0; k < q.cols; ++k) {
      GroupParams p = q.params(n, k);
      w[n * q.cols + k] = dequantizeValue(rowCodes[k], p.scale, p.zero);
    }
  }
  return w;
}

double relativeError(const float *ref, const float *approx, size_t n) {
  double diff = 0.0, norm = 0.0;
  for (size_t i = 0; i < n; ++i) {
    double d = static_cast<double>(ref[i]) - static_cast<double>(approx[i]);
    diff += d * d;
    norm += static_cast<double>(ref[i]) * static_cast<double>(ref[i]);
  }
  if (norm == 0.0)
    return diff == 0.0 ? 0.0 : std::numeric_limits<double>::infinity();
  return std::sqrt(diff / norm);
}

int64_t packedBytes(const AffineQuantized &q) {
  return static_cast<int64_t>(q.codes.size() * sizeof(uint32_t) +
                              q.scales.size() * sizeof(float) +
                              q.zeroPoints.size() * sizeof(uint8_t));
}

double bitsPerWeight(const AffineQuantized &q) {
  int64_t weights = q.rows * q.cols;
  if (weights == 0)
    return 0.0;
  return static_cast<double>(packedBytes(q)) * 8.0 /
         static_cast<double>(weights);
}

} // namespace qforge::quant
