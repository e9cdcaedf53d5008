//===- PackingTest.cpp - Tests of quantization code packing -----*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//

#include "qforge/Quant/Packing.h"

#include <gtest/gtest.h>

#include <random>

using namespace qforge::quant;

namespace {

TEST(PackingTest, WordsPerRow) {
  EXPECT_EQ(wordsPerRow(0, 4), 0);
  EXPECT_EQ(wordsPerRow(1, 3), 1);
  EXPECT_EQ(wordsPerRow(10, 3), 1); // 30 bits
  EXPECT_EQ(wordsPerRow(11, 3), 2); // 33 bits
  EXPECT_EQ(wordsPerRow(32, 4), 4);
  EXPECT_EQ(wordsPerRow(33, 4), 5);
  EXPECT_EQ(wordsPerRow(100, 2), 7); // 200 bits
  EXPECT_EQ(wordsPerRow(4, 8), 1);
  EXPECT_EQ(wordsPerRow(5, 8), 2);
}

// Code k sits at bits [4k, 4k + 4): the hex digits read backwards.
TEST(PackingTest, FourBitWord) {
  const uint8_t codes[] = {1, 2, 3, 4, 5, 6, 7, 8};
  std::vector<uint32_t> packed = pack(codes, 1, 8, 4);
  ASSERT_EQ(packed.size(), 1u);
  EXPECT_EQ(packed[0], 0x87654321u);
}

// Codes 1,2 -> low nibble 0b1001; codes 3,0 -> 0b0011; code 3 -> 0b0011.
TEST(PackingTest, TwoBitWord) {
  const uint8_t codes[] = {1, 2, 3, 0, 3};
  std::vector<uint32_t> packed = pack(codes, 1, 5, 2);
  ASSERT_EQ(packed.size(), 1u);
  EXPECT_EQ(packed[0], 0x339u);
}

TEST(PackingTest, EightBitWords) {
  const uint8_t codes[] = {0x12, 0x34, 0x56, 0x78, 0x9a};
  std::vector<uint32_t> packed = pack(codes, 1, 5, 8);
  ASSERT_EQ(packed.size(), 2u);
  EXPECT_EQ(packed[0], 0x78563412u);
  EXPECT_EQ(packed[1], 0x9au); // padding bits are zero
}

// 3-bit codes are octal digits of the bitstream: code k is digit k. Code 10
// (5 = 0b101) occupies bits 30..32: its low two bits (0b01) end word 0 and
// its top bit (1) starts word 1. Word 0 therefore reads, in octal,
// 1 2 1 0 7 6 5 4 3 2 1 (digit 10 = 5 mod 4 = 1), i.e. 0x511F58D1.
TEST(PackingTest, ThreeBitCodeStraddlesWords) {
  const uint8_t codes[] = {1, 2, 3, 4, 5, 6, 7, 0, 1, 2, 5};
  std::vector<uint32_t> packed = pack(codes, 1, 11, 3);
  ASSERT_EQ(packed.size(), 2u);
  EXPECT_EQ(packed[0], 012107654321u);
  EXPECT_EQ(packed[0], 0x511F58D1u);
  EXPECT_EQ(packed[1], 0x1u);
  EXPECT_EQ(extractCode(packed.data(), 10, 3), 5u);
  EXPECT_EQ(extractCode(packed.data(), 9, 3), 2u);
}

// Code 10 = 6 (0b110) occupies bits 30..32: its zero bit is bit 30 of word 0,
// its ones are bit 31 of word 0 and bit 0 of word 1. Code 21 = 7 (0b111)
// occupies bits 63..65: bit 31 of word 1 and bits 0, 1 of word 2.
TEST(PackingTest, ThreeBitCodesAtBothBoundaries) {
  std::vector<uint8_t> codes(22, 0);
  codes[10] = 6;
  codes[21] = 7;
  std::vector<uint32_t> packed = pack(codes.data(), 1, 22, 3);
  ASSERT_EQ(packed.size(), 3u);
  EXPECT_EQ(packed[0], 0x80000000u);
  EXPECT_EQ(packed[1], 0x80000001u);
  EXPECT_EQ(packed[2], 0x3u);
  EXPECT_EQ(extractCode(packed.data(), 10, 3), 6u);
  EXPECT_EQ(extractCode(packed.data(), 21, 3), 7u);
  EXPECT_EQ(unpack(packed.data(), 1, 22, 3), codes);
}

// Rows start on word boundaries: the second row of 3-bit codes with K = 11
// starts at word 2.
TEST(PackingTest, RowsArePadded) {
  std::vector<uint8_t> codes(22, 0);
  codes[11] = 7; // row 1, code 0
  std::vector<uint32_t> packed = pack(codes.data(), 2, 11, 3);
  ASSERT_EQ(packed.size(), 4u);
  EXPECT_EQ(packed[0], 0u);
  EXPECT_EQ(packed[1], 0u);
  EXPECT_EQ(packed[2], 7u);
  EXPECT_EQ(packed[3], 0u);
}

class PackingRoundTrip
    : public ::testing::TestWithParam<std::tuple<unsigned, int64_t>> {};

TEST_P(PackingRoundTrip, PackUnpack) {
  auto [bits, cols] = GetParam();
  const int64_t rows = 3;
  std::mt19937 rng(bits * 1000 + static_cast<unsigned>(cols));
  std::uniform_int_distribution<unsigned> dist(0, (1u << bits) - 1);
  std::vector<uint8_t> codes(rows * cols);
  for (uint8_t &c : codes)
    c = static_cast<uint8_t>(dist(rng));

  int64_t words = wordsPerRow(cols, bits);
  EXPECT_EQ(words, (cols * bits + 31) / 32);
  std::vector<uint32_t> packed = pack(codes.data(), rows, cols, bits);
  ASSERT_EQ(static_cast<int64_t>(packed.size()), rows * words);
  EXPECT_EQ(unpack(packed.data(), rows, cols, bits), codes);

  for (int64_t n = 0; n < rows; ++n) {
    const uint32_t *row = packed.data() + n * words;
    for (int64_t k = 0; k < cols; ++k)
      ASSERT_EQ(extractCode(row, k, bits), codes[n * cols + k])
          << "row " << n << " code " << k;
    // Padding bits after the last code are zero.
    int64_t usedBits = cols * bits - 32 * (words - 1);
    if (usedBits < 32) {
      EXPECT_EQ(row[words - 1] >> usedBits, 0u) << "row " << n;
    }
    // Bit-by-bit check of the layout: bit p of the row is bit p % bits of
    // code p / bits.
    for (int64_t p = 0; p < cols * bits; ++p) {
      unsigned expected = (codes[n * cols + p / bits] >> (p % bits)) & 1u;
      ASSERT_EQ((row[p / 32] >> (p % 32)) & 1u, expected) << "bit " << p;
    }
  }

  // packRow overwrites whatever the destination held.
  std::vector<uint32_t> dirty(words, 0xFFFFFFFFu);
  packRow(codes.data(), cols, bits, dirty.data());
  EXPECT_EQ(dirty,
            std::vector<uint32_t>(packed.begin(), packed.begin() + words));
  std::vector<uint8_t> rowCodes(cols, 0xFF);
  unpackRow(packed.data() + words, cols, bits, rowCodes.data());
  EXPECT_EQ(rowCodes, std::vector<uint8_t>(codes.begin() + cols,
                                           codes.begin() + 2 * cols));
}

INSTANTIATE_TEST_SUITE_P(
    AllWidths, PackingRoundTrip,
    ::testing::Combine(::testing::Values(1u, 2u, 3u, 4u, 5u, 6u, 7u, 8u),
                       ::testing::Values(1, 7, 31, 32, 33, 100)));

} // namespace
