//===- Packing.cpp - Bit packing of quantization codes ----------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//

#include "qforge/Quant/Packing.h"

#include <algorithm>
#include <cassert>

namespace qforge::quant {

int64_t wordsPerRow(int64_t cols, unsigned bits) {
  assert(cols >= 0 && bits >= 1 && bits <= 8 && "bad packing shape");
  return (cols * static_cast<int64_t>(bits) + 31) / 32;
}

void packRow(const uint8_t *codes, int64_t cols, unsigned bits, uint32_t *out) {
  std::fill(out, out + wordsPerRow(cols, bits), 0u);
  const uint32_t mask = (1u << bits) - 1;
  for (int64_t k = 0; k < cols; ++k) {
    uint32_t code = codes[k] & mask;
    assert(code == codes[k] && "code wider than the bit width");
    int64_t bit = k * static_cast<int64_t>(bits);
    int64_t word = bit / 32;
    unsigned offset = static_cast<unsigned>(bit % 32);
    out[word] |= code << offset;
    // A code that crosses a word boundary puts its high bits at the bottom of
    // the next word.
    if (offset + bits > 32)
      out[word + 1] |= code >> (32 - offset);
  }
}

void unpackRow(const uint32_t *row, int64_t cols, unsigned bits,
               uint8_t *codes) {
  for (int64_t k = 0; k < cols; ++k)
    codes[k] = static_cast<uint8_t>(extractCode(row, k, bits));
}

std::vector<uint32_t> pack(const uint8_t *codes, int64_t rows, int64_t cols,
                           unsigned bits) {
  int64_t words = wordsPerRow(cols, bits);
  std::vector<uint32_t> packed(static_cast<size_t>(rows * words));
  for (int64_t n = 0; n < rows; ++n)
    packRow(codes + n * cols, cols, bits, packed.data() + n * words);
  return packed;
}

std::vector<uint8_t> unpack(const uint32_t *packed, int64_t rows, int64_t cols,
                            unsigned bits) {
  int64_t words = wordsPerRow(cols, bits);
  std::vector<uint8_t> codes(static_cast<size_t>(rows * cols));
  for (int64_t n = 0; n < rows; ++n)
    unpackRow(packed + n * words, cols, bits, codes.data() + n * cols);
  return codes;
}

} // namespace qforge::quant
