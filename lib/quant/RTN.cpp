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

ValueRange valueRange(const float *values, int64_t count) {
  if (count == 0)
    return {0.0f, 0.0f};
  ValueRange range{values[0], values[0]};
  for (int64_t i = 1; i < count; ++i) {
    range.lo = std::min(range.lo, values[i]);
    range.hi = std::max(range.hi, values[i]);
  }
  return range;
}

GroupParams computeGroupParams(const float *groupValues, int64_t count,
                               const Scheme &scheme) {
  return computeGroupParams(valueRange(groupValues, count), scheme);
}

GroupParams computeGroupParams(ValueRange range, const Scheme &scheme) {
  assert(scheme.validate().empty() && "invalid quantization scheme");
  float scale;
  int zero;
  if (scheme.symmetric) {
    float maxAbs = std::max(std::fabs(range.lo), std::fabs(range.hi));
    scale = maxAbs / static_cast<float>(scheme.symmetricZero() - 1);
    zero = scheme.symmetricZero();
  } else {
    // The range always contains 0 so that 0 is exactly representable.
    float lo = std::min(range.lo, 0.0f), hi = std::max(range.hi, 0.0f);
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

void AffineQuantized::setParams(int64_t index, GroupParams p) {
  scales[index] = p.scale;
  if (!scheme.symmetric)
    zeroPoints[index] = static_cast<uint8_t>(p.zero);
}

GroupRegion groupRegion(const Scheme &scheme, int64_t rows, int64_t cols,
                        int64_t scaleRow, int64_t group) {
  switch (scheme.granularity) {
  case Granularity::PerTensor:
    return {0, rows, 0, cols};
  case Granularity::PerChannel:
    return {scaleRow, scaleRow + 1, 0, cols};
  case Granularity::Group:
    break;
  }
  int64_t begin = group * scheme.groupSize;
  return {scaleRow, scaleRow + 1, begin,
          std::min(begin + scheme.groupSize, cols)};
}

ValueRange regionRange(const float *w, int64_t cols,
                       const GroupRegion &region) {
  // Every region is a contiguous range of W: the whole matrix, one row, or a
  // slice of one row.
  int64_t count = region.rowEnd - region.rowBegin == 1
                      ? region.colEnd - region.colBegin
                      : (region.rowEnd - region.rowBegin) * cols;
  return valueRange(w + region.rowBegin * cols + region.colBegin, count);
}

AffineQuantized makeQuantized(int64_t rows, int64_t cols,
                              const Scheme &scheme) {
  assert(scheme.validate().empty() && "invalid quantization scheme");
  AffineQuantized q;
  q.rows = rows;
  q.cols = cols;
  q.scheme = scheme;
  q.scales.resize(
      static_cast<size_t>(scheme.scaleRows(rows) * scheme.numGroups(cols)));
  if (!scheme.symmetric)
    q.zeroPoints.resize(q.scales.size());
  q.codes.resize(static_cast<size_t>(rows * wordsPerRow(cols, scheme.bits)));
  return q;
}

void encodeWithParams(AffineQuantized &q, const float *w) {
  int64_t words = wordsPerRow(q.cols, q.scheme.bits);
  std::vector<uint8_t> rowCodes(static_cast<size_t>(q.cols));
  for (int64_t n = 0; n < q.rows; ++n) {
    for (int64_t k = 0; k < q.cols; ++k) {
      GroupParams p = q.params(n, k);
      rowCodes[k] = static_cast<uint8_t>(
          quantizeValue(w[n * q.cols + k], p.scale, p.zero, q.scheme));
    }
    packRow(rowCodes.data(), q.cols, q.scheme.bits, q.codes.data() + n * words);
  }
}

void fillRTNParams(AffineQuantized &q, const float *w) {
  int64_t groups = q.scheme.numGroups(q.cols);
  for (int64_t r = 0; r < q.scheme.scaleRows(q.rows); ++r) {
    for (int64_t g = 0; g < groups; ++g) {
      GroupRegion region = groupRegion(q.scheme, q.rows, q.cols, r, g);
      q.setParams(r * groups + g,
                  computeGroupParams(regionRange(w, q.cols, region), q.scheme));
    }
  }
}

AffineQuantized quantizeRTN(const float *w, int64_t rows, int64_t cols,
                            const Scheme &scheme) {
  AffineQuantized q = makeQuantized(rows, cols, scheme);
  fillRTNParams(q, w);
  encodeWithParams(q, w);
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
