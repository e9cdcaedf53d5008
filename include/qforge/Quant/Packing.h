//===- Packing.h - Bit packing of quantization codes ------------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// Packed layout of an N x K matrix of unsigned `bits`-wide codes (1 <= bits
// <= 8), the layout that `qf.dequantize` and the kernels read:
//
//  - each row is one little-endian bitstream: code k occupies bits
//    [k*bits, k*bits + bits) of the row, and bit position p lives in 32-bit
//    word p / 32 at bit p % 32 (so 3-bit codes may straddle two words);
//  - each row is padded with zero bits to wordsPerRow(K, bits) =
//    ceil(K * bits / 32) words, so row n starts at word n * wordsPerRow.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_QUANT_PACKING_H
#define QFORGE_QUANT_PACKING_H

#include <cstdint>
#include <vector>

namespace qforge::quant {

/// 32-bit words holding one packed row of `cols` codes.
int64_t wordsPerRow(int64_t cols, unsigned bits);

/// Packs `cols` codes into `out`, which holds wordsPerRow(cols, bits) words
/// and is overwritten (padding bits are zero). Every code must be below
/// 2^bits.
void packRow(const uint8_t *codes, int64_t cols, unsigned bits, uint32_t *out);

/// Unpacks `cols` codes of one packed row into `codes`.
void unpackRow(const uint32_t *row, int64_t cols, unsigned bits,
               uint8_t *codes);

/// Packs a row-major `rows` x `cols` matrix of codes: rows * wordsPerRow words.
std::vector<uint32_t> pack(const uint8_t *codes, int64_t rows, int64_t cols,
                           unsigned bits);

/// Inverse of `pack`: a row-major `rows` x `cols` matrix of codes.
std::vector<uint8_t> unpack(const uint32_t *packed, int64_t rows, int64_t cols,
                            unsigned bits);

/// Code k of one packed row.
inline unsigned extractCode(const uint32_t *row, int64_t k, unsigned bits) {
  int64_t bit = k * static_cast<int64_t>(bits);
  int64_t word = bit / 32;
  unsigned offset = static_cast<unsigned>(bit % 32);
  uint64_t value = row[word] >> offset;
  if (offset + bits > 32)
    value |= static_cast<uint64_t>(row[word + 1]) << (32 - offset);
  return static_cast<unsigned>(value & ((1u << bits) - 1));
}

} // namespace qforge::quant

#endif // QFORGE_QUANT_PACKING_H
