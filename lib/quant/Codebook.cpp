//===- Codebook.cpp - Non-uniform (look-up table) quantization --*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//

#include "qforge/Quant/Codebook.h"
#include "qforge/Quant/Packing.h"

#include <algorithm>
#include <cassert>
#include <cstring>

namespace qforge::quant {

CodebookQuantized
quantizeCodebook(const float *w, int64_t rows, int64_t cols, unsigned bits,
                 const Sensitivity &sensitivity, const uint8_t *excluded,
                 const KMeansOptions &options,
                 const std::function<void(int64_t)> &progress) {
  assert((bits == 2 || bits == 3 || bits == 4 || bits == 8) && "bad width");
  CodebookQuantized q;
  q.rows = rows;
  q.cols = cols;
  q.bits = bits;
  const int64_t words = wordsPerRow(cols, bits);
  const int k = int(q.entries());
  q.codes.assign(size_t(rows * words), 0u);
  q.lut.assign(size_t(rows * k), 0.0f);
  const int64_t block = std::max<int64_t>(1, rows / 16);
  std::vector<float> sample(static_cast<size_t>(cols));
  for (int64_t n = 0; n < rows; ++n) {
    const float *row = w + n * cols;
    bool weighted = sensitivity.perWeight || sensitivity.perColumn || excluded;
    for (int64_t c = 0; weighted && c < cols; ++c) {
      float s = sensitivity.perWeight   ? sensitivity.perWeight[n * cols + c]
                : sensitivity.perColumn ? sensitivity.perColumn[c]
                                        : 1.0f;
      sample[size_t(c)] = excluded && excluded[n * cols + c] ? 0.0f : s;
    }
    KMeansResult r = weightedKMeans1D(row, weighted ? sample.data() : nullptr,
                                      cols, k, options);
    std::copy(r.centroids.begin(), r.centroids.end(), q.lut.begin() + n * k);
    packRow(r.labels.data(), cols, bits, q.codes.data() + n * words);
    if (progress && ((n + 1) % block == 0 || n + 1 == rows))
      progress(n + 1);
  }
  return q;
}

uint16_t halfBits(float v) {
  _Float16 h = static_cast<_Float16>(v);
  uint16_t bits;
  std::memcpy(&bits, &h, sizeof bits);
  return bits;
}

void roundTableToHalf(CodebookQuantized &q) {
  for (float &v : q.lut)
    v = static_cast<float>(static_cast<_Float16>(v));
  q.halfTable = true;
}

std::vector<float> dequantize(const CodebookQuantized &q) {
  std::vector<float> out(size_t(q.rows * q.cols));
  const int64_t words = wordsPerRow(q.cols, q.bits);
  for (int64_t n = 0; n < q.rows; ++n)
    for (int64_t c = 0; c < q.cols; ++c)
      out[size_t(n * q.cols + c)] =
          q.lut[size_t(n * q.entries() +
                       extractCode(q.codes.data() + n * words, c, q.bits))];
  return out;
}

int64_t packedBytes(const CodebookQuantized &q) {
  return int64_t(q.codes.size() * sizeof(uint32_t) +
                 q.lut.size() * (q.halfTable ? 2 : sizeof(float)));
}

} // namespace qforge::quant
