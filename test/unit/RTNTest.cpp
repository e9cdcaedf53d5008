//===- RTNTest.cpp - Tests of round-to-nearest quantization -----*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//

#include "qforge/Quant/RTN.h"
#include "qforge/Quant/Packing.h"

#include "QuantTestUtil.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>

using namespace qforge::quant;
using namespace qforge::quant::test;

namespace {

std::vector<float> randomMatrix(int64_t rows, int64_t cols, unsigned seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> pick(0, 19);
  std::vector<float> w(rows * cols);
  for (float &x : w) {
    x = normal(rng);
    if (pick(rng) == 0)
      x *= 6.0f; // a few outliers
    else if (pick(rng) == 0)
      x = 0.0f; // and exact zeros
  }
  return w;
}

//===----------------------------------------------------------------------===//
// Scheme
//===----------------------------------------------------------------------===//

TEST(SchemeTest, ScaleShapes) {
  Scheme t = Scheme::perTensor(4, true);
  EXPECT_EQ(t.scaleRows(16), 1);
  EXPECT_EQ(t.numGroups(100), 1);
  Scheme c = Scheme::perChannel(4, true);
  EXPECT_EQ(c.scaleRows(16), 16);
  EXPECT_EQ(c.numGroups(100), 1);
  Scheme g = Scheme::grouped(4, 32, true);
  EXPECT_EQ(g.scaleRows(16), 16);
  EXPECT_EQ(g.numGroups(100), 4); // ceil(100 / 32)
  EXPECT_EQ(g.numGroups(96), 3);
  EXPECT_EQ(g.numGroups(5), 1);
  EXPECT_EQ(g.groupOf(31), 0);
  EXPECT_EQ(g.groupOf(32), 1);
  EXPECT_EQ(g.paramIndex(2, 65, 100), 2 * 4 + 2);
  EXPECT_EQ(t.paramIndex(2, 65, 100), 0);
  EXPECT_EQ(c.paramIndex(2, 65, 100), 2);
}

TEST(SchemeTest, Codes) {
  EXPECT_EQ(Scheme::perTensor(2, true).maxCode(), 3u);
  EXPECT_EQ(Scheme::perTensor(2, true).symmetricZero(), 2);
  EXPECT_EQ(Scheme::perTensor(3, true).maxCode(), 7u);
  EXPECT_EQ(Scheme::perTensor(3, true).symmetricZero(), 4);
  EXPECT_EQ(Scheme::perTensor(8, true).maxCode(), 255u);
  EXPECT_EQ(Scheme::perTensor(8, true).symmetricZero(), 128);
}

TEST(SchemeTest, Validate) {
  for (unsigned bits : {2u, 3u, 4u, 8u})
    EXPECT_EQ(Scheme::grouped(bits, 128, false).validate(), "");
  EXPECT_EQ(Scheme::perChannel(4, true).validate(), "");
  EXPECT_NE(Scheme::perTensor(5, true).validate().find("bit width 5"),
            std::string::npos);
  EXPECT_NE(Scheme::perTensor(1, true).validate(), "");
  EXPECT_NE(Scheme::perTensor(16, true).validate(), "");
  EXPECT_NE(Scheme::grouped(4, 0, true).validate().find("group size"),
            std::string::npos);
  EXPECT_NE(Scheme::grouped(4, -1, true).validate(), "");
}

//===----------------------------------------------------------------------===//
// Hand-checked groups
//===----------------------------------------------------------------------===//

// One group of four, symmetric 4-bit: scale = max|w| / 7 = 0.1,
// q = round(w / 0.1) = [7, -3, 0, 1], u = q + 8 = [15, 5, 8, 9].
TEST(RTNTest, FourBitSymmetricGroup) {
  const float w[] = {0.7f, -0.3f, 0.0f, 0.14f};
  AffineQuantized q = quantizeRTN(w, 1, 4, Scheme::grouped(4, 4, true));
  ASSERT_EQ(q.scales.size(), 1u);
  EXPECT_FLOAT_EQ(q.scales[0], 0.1f);
  EXPECT_TRUE(q.zeroPoints.empty());
  EXPECT_EQ(codesOf(q), (std::vector<uint8_t>{15, 5, 8, 9}));
  ASSERT_EQ(q.codes.size(), 1u);
  EXPECT_EQ(q.codes[0], 0x985Fu);
  std::vector<float> d = dequantize(q);
  EXPECT_FLOAT_EQ(d[0], 0.7f);
  EXPECT_FLOAT_EQ(d[1], -0.3f);
  EXPECT_EQ(d[2], 0.0f);
  EXPECT_FLOAT_EQ(d[3], 0.1f);
}

// One group of four, 3-bit with a zero point:
//   lo = -0.22, hi = 0.48, scale = (0.48 + 0.22) / 7 = 0.1,
//   z = round(0.22 / 0.1) = round(2.2) = 2,
//   u = round(w / 0.1) + 2 = [-2, 1, 5, 0] + 2 = [0, 3, 7, 2],
//   dequantized 0.1 * (u - 2) = [-0.2, 0.1, 0.5, 0.0].
TEST(RTNTest, ThreeBitAsymmetricGroup) {
  const float w[] = {-0.22f, 0.13f, 0.48f, -0.04f};
  AffineQuantized q = quantizeRTN(w, 1, 4, Scheme::grouped(3, 4, false));
  ASSERT_EQ(q.scales.size(), 1u);
  EXPECT_FLOAT_EQ(q.scales[0], 0.1f);
  EXPECT_EQ(q.zeroPoints, (std::vector<uint8_t>{2}));
  EXPECT_EQ(codesOf(q), (std::vector<uint8_t>{0, 3, 7, 2}));
  std::vector<float> d = dequantize(q);
  EXPECT_FLOAT_EQ(d[0], -0.2f);
  EXPECT_FLOAT_EQ(d[1], 0.1f);
  EXPECT_FLOAT_EQ(d[2], 0.5f);
  EXPECT_EQ(d[3], 0.0f);
}

// Symmetric 2-bit keeps q in {-1, 0, 1}: scale = 0.6,
// q = round([1, -0.33, 0.58, -1]) = [1, 0, 1, -1], u = q + 2 = [3, 2, 3, 1].
TEST(RTNTest, TwoBitSymmetric) {
  const float w[] = {0.6f, -0.2f, 0.35f, -0.6f};
  AffineQuantized q = quantizeRTN(w, 1, 4, Scheme::perChannel(2, true));
  EXPECT_FLOAT_EQ(q.scales[0], 0.6f);
  EXPECT_EQ(codesOf(q), (std::vector<uint8_t>{3, 2, 3, 1}));
  EXPECT_EQ(q.codes[0], 0x7Bu); // 0b01'11'10'11
}

// All weights >= 0: lo = 0, hi = 0.9, scale = 0.9 / 3 = 0.3, z = 0,
// u = round(w / 0.3) = [0, 1, 3, 2].
TEST(RTNTest, TwoBitAsymmetric) {
  const float w[] = {0.0f, 0.3f, 0.9f, 0.6f};
  AffineQuantized q = quantizeRTN(w, 1, 4, Scheme::perChannel(2, false));
  EXPECT_FLOAT_EQ(q.scales[0], 0.3f);
  EXPECT_EQ(q.zeroPoints, (std::vector<uint8_t>{0}));
  EXPECT_EQ(codesOf(q), (std::vector<uint8_t>{0, 1, 3, 2}));
}

// scale = 1.27 / 127 = 0.01; q = [127, -50, 1, 0]; u = q + 128.
TEST(RTNTest, EightBitSymmetric) {
  const float w[] = {1.27f, -0.5f, 0.01f, 0.0f};
  AffineQuantized q = quantizeRTN(w, 1, 4, Scheme::perTensor(8, true));
  EXPECT_FLOAT_EQ(q.scales[0], 0.01f);
  EXPECT_EQ(codesOf(q), (std::vector<uint8_t>{255, 78, 129, 128}));
  EXPECT_EQ(q.codes[0], 0x80814EFFu);
}

// lo = -1, hi = 1.55, scale = 2.55 / 255 = 0.01, z = round(100) = 100,
// u = round(w / 0.01) + 100 = [0, 255, 150, 100].
TEST(RTNTest, EightBitAsymmetric) {
  const float w[] = {-1.0f, 1.55f, 0.5f, 0.0f};
  AffineQuantized q = quantizeRTN(w, 1, 4, Scheme::perTensor(8, false));
  EXPECT_FLOAT_EQ(q.scales[0], 0.01f);
  EXPECT_EQ(q.zeroPoints, (std::vector<uint8_t>{100}));
  EXPECT_EQ(codesOf(q), (std::vector<uint8_t>{0, 255, 150, 100}));
}

TEST(RTNTest, GroupParamsAndQuantizeValue) {
  const float g[] = {-0.22f, 0.13f, 0.48f, -0.04f};
  GroupParams p = computeGroupParams(g, 4, Scheme::perTensor(3, false));
  EXPECT_FLOAT_EQ(p.scale, 0.1f);
  EXPECT_EQ(p.zero, 2);
  GroupParams s = computeGroupParams(g, 4, Scheme::perTensor(3, true));
  EXPECT_FLOAT_EQ(s.scale, 0.48f / 3.0f);
  EXPECT_EQ(s.zero, 4);

  // Values outside the group's range clamp to the extreme codes; symmetric
  // codes never use 0.
  Scheme sym = Scheme::perTensor(4, true), asym = Scheme::perTensor(4, false);
  EXPECT_EQ(quantizeValue(100.0f, 0.1f, 8, sym), 15u);
  EXPECT_EQ(quantizeValue(-100.0f, 0.1f, 8, sym), 1u);
  EXPECT_EQ(quantizeValue(100.0f, 0.1f, 3, asym), 15u);
  EXPECT_EQ(quantizeValue(-100.0f, 0.1f, 3, asym), 0u);
  // Round half away from zero: 0.25 / 0.5 = 0.5 -> 1, -0.5 -> -1.
  EXPECT_EQ(quantizeValue(0.25f, 0.5f, 8, sym), 9u);
  EXPECT_EQ(quantizeValue(-0.25f, 0.5f, 8, sym), 7u);
  EXPECT_EQ(dequantizeValue(5u, 0.5f, 8), -1.5f);
}

//===----------------------------------------------------------------------===//
// Scale shapes and zero rows
//===----------------------------------------------------------------------===//

TEST(RTNTest, PerTensorShape) {
  std::vector<float> w = randomMatrix(5, 9, 1);
  AffineQuantized q = quantizeRTN(w.data(), 5, 9, Scheme::perTensor(4, false));
  EXPECT_EQ(q.scales.size(), 1u);
  EXPECT_EQ(q.zeroPoints.size(), 1u);
  EXPECT_EQ(q.codes.size(), 5u * wordsPerRow(9, 4));
  float maxAbs = 0.0f;
  for (float x : w)
    maxAbs = std::max(maxAbs, std::fabs(x));
  AffineQuantized s = quantizeRTN(w.data(), 5, 9, Scheme::perTensor(4, true));
  EXPECT_FLOAT_EQ(s.scales[0], maxAbs / 7.0f);
}

// Rows of very different magnitude get their own scales.
TEST(RTNTest, PerChannelShape) {
  const float w[] = {1.4f, -0.6f, 0.0f, // scale 1.4 / 7 = 0.2, q = [7, -3, 0]
                     0.0f, 0.08f, -0.14f}; // scale 0.02, q = [0, 4, -7]
  AffineQuantized q = quantizeRTN(w, 2, 3, Scheme::perChannel(4, true));
  ASSERT_EQ(q.scales.size(), 2u);
  EXPECT_FLOAT_EQ(q.scales[0], 0.2f);
  EXPECT_FLOAT_EQ(q.scales[1], 0.02f);
  EXPECT_EQ(codesOf(q), (std::vector<uint8_t>{15, 5, 8, 8, 12, 1}));
  AffineQuantized a = quantizeRTN(w, 2, 3, Scheme::perChannel(4, false));
  EXPECT_EQ(a.scales.size(), 2u);
  EXPECT_EQ(a.zeroPoints.size(), 2u);
}

// K = 10 in groups of 4: groups [0, 4), [4, 8) and a partial [8, 10).
TEST(RTNTest, GroupShapeWithPartialGroup) {
  std::vector<float> w = {0.7f, 0.1f,   0.2f, -0.3f, // group 0: max 0.7
                          7.0f, 1.0f,   0.0f, -2.0f, // group 1: max 7
                          0.0f, -0.07f,              // group 2: max 0.07
                          0.0f, 0.0f,   0.0f, 0.0f,  // row 1: group 0 zero
                          1.4f, 0.0f,   0.0f, 0.0f,  // group 1: max 1.4
                          0.0f, 0.0f};               // group 2 zero
  AffineQuantized q = quantizeRTN(w.data(), 2, 10, Scheme::grouped(4, 4, true));
  ASSERT_EQ(q.scales.size(), 6u);
  const float expected[] = {0.1f, 1.0f, 0.01f, 1.0f, 0.2f, 1.0f};
  for (int i = 0; i < 6; ++i)
    EXPECT_FLOAT_EQ(q.scales[i], expected[i]) << "scale " << i;
  std::vector<uint8_t> codes = codesOf(q);
  EXPECT_EQ(codes[9], 1u);   // -0.07 / 0.01 = -7
  EXPECT_EQ(codes[14], 15u); // 1.4 / 0.2 = 7

  AffineQuantized a =
      quantizeRTN(w.data(), 2, 10, Scheme::grouped(4, 4, false));
  EXPECT_EQ(a.scales.size(), 6u);
  EXPECT_EQ(a.zeroPoints.size(), 6u);
  // A group size beyond K gives one group per row.
  AffineQuantized wide =
      quantizeRTN(w.data(), 2, 10, Scheme::grouped(4, 128, true));
  EXPECT_EQ(wide.scales.size(), 2u);
  EXPECT_FLOAT_EQ(wide.scales[0], 1.0f);
}

TEST(RTNTest, AllZeroMatrix) {
  std::vector<float> w(3 * 10, 0.0f);
  for (const Scheme &s : allSchemes()) {
    SCOPED_TRACE(describe(s));
    AffineQuantized q = quantizeRTN(w.data(), 3, 10, s);
    for (float scale : q.scales)
      EXPECT_EQ(scale, 1.0f);
    for (uint8_t z : q.zeroPoints)
      EXPECT_EQ(z, 0u);
    unsigned expected = s.symmetric ? s.symmetricZero() : 0u;
    for (uint8_t c : codesOf(q))
      EXPECT_EQ(c, expected);
    for (float x : dequantize(q))
      EXPECT_EQ(x, 0.0f);
  }
}

// A zero row among others decodes to exactly 0 with scale 1.
TEST(RTNTest, ZeroRow) {
  std::vector<float> w = randomMatrix(3, 12, 7);
  std::fill(w.begin() + 12, w.begin() + 24, 0.0f);
  for (bool symmetric : {true, false}) {
    AffineQuantized q =
        quantizeRTN(w.data(), 3, 12, Scheme::perChannel(4, symmetric));
    EXPECT_EQ(q.scales[1], 1.0f);
    EXPECT_NE(q.scales[0], 1.0f);
    std::vector<float> d = dequantize(q);
    for (int k = 12; k < 24; ++k)
      EXPECT_EQ(d[k], 0.0f);
  }
}

//===----------------------------------------------------------------------===//
// Properties on random matrices
//===----------------------------------------------------------------------===//

// For every scheme: |w - dequant(w)| <= scale / 2 for every weight, the
// dequantized matrix equals scale * (code - zero) read straight from the
// packed words, symmetric codes never use 0, and zeros stay exactly zero.
TEST(RTNTest, ErrorWithinHalfScale) {
  const int64_t rows = 7, cols = 37; // groups of 8 and 16 leave a partial tail
  unsigned seed = 100;
  for (const Scheme &s : allSchemes()) {
    SCOPED_TRACE(describe(s));
    std::vector<float> w = randomMatrix(rows, cols, ++seed);
    AffineQuantized q = quantizeRTN(w.data(), rows, cols, s);

    int64_t groups = s.granularity == Granularity::Group
                         ? (cols + s.groupSize - 1) / s.groupSize
                         : 1;
    int64_t scaleRows = s.granularity == Granularity::PerTensor ? 1 : rows;
    ASSERT_EQ(static_cast<int64_t>(q.scales.size()), scaleRows * groups);
    ASSERT_EQ(q.zeroPoints.size(), s.symmetric ? 0u : q.scales.size());
    ASSERT_EQ(static_cast<int64_t>(q.codes.size()),
              rows * ((cols * s.bits + 31) / 32));

    std::vector<float> d = dequantize(q);
    int64_t words = wordsPerRow(cols, s.bits);
    for (int64_t n = 0; n < rows; ++n) {
      for (int64_t k = 0; k < cols; ++k) {
        int64_t g = s.granularity == Granularity::Group ? k / s.groupSize : 0;
        int64_t index =
            (s.granularity == Granularity::PerTensor ? 0 : n) * groups + g;
        float scale = q.scales[index];
        int zero = s.symmetric ? (1 << (s.bits - 1)) : q.zeroPoints[index];
        unsigned code = extractCode(q.codes.data() + n * words, k, s.bits);
        ASSERT_LE(code, (1u << s.bits) - 1);
        if (s.symmetric) {
          ASSERT_GE(code, 1u);
        }
        float x = w[n * cols + k];
        float decoded =
            scale * static_cast<float>(static_cast<int>(code) - zero);
        ASSERT_EQ(d[n * cols + k], decoded) << "at " << n << ", " << k;
        float bound = scale * 0.5f * (1.0f + 1e-5f) + 1e-6f * std::fabs(x);
        ASSERT_LE(std::fabs(x - decoded), bound) << "at " << n << ", " << k;
        if (x == 0.0f) {
          ASSERT_EQ(decoded, 0.0f) << "at " << n << ", " << k;
        }
      }
    }
  }
}

// More bits, less error, for every granularity and both forms.
TEST(RTNTest, ErrorDecreasesWithBits) {
  const int64_t rows = 16, cols = 64;
  std::vector<float> w = randomMatrix(rows, cols, 42);
  for (Granularity gran :
       {Granularity::PerTensor, Granularity::PerChannel, Granularity::Group}) {
    for (bool symmetric : {true, false}) {
      double previous = std::numeric_limits<double>::infinity();
      for (unsigned bits : {2u, 3u, 4u, 8u}) {
        Scheme s{bits, gran, 16, symmetric};
        SCOPED_TRACE(describe(s));
        AffineQuantized q = quantizeRTN(w.data(), rows, cols, s);
        std::vector<float> d = dequantize(q);
        double err = relativeError(w.data(), d.data(), w.size());
        EXPECT_LT(err, previous);
        EXPECT_GT(err, 0.0);
        previous = err;
      }
      EXPECT_LT(previous, 0.02); // 8 bits
    }
  }
}

// Smaller groups track local magnitudes: per-channel is no worse than per
// tensor, groups of 16 no worse than per channel.
TEST(RTNTest, FinerGranularityHelps) {
  const int64_t rows = 16, cols = 64;
  std::vector<float> w = randomMatrix(rows, cols, 43);
  for (unsigned bits : {2u, 3u, 4u}) {
    auto err = [&](const Scheme &s) {
      AffineQuantized q = quantizeRTN(w.data(), rows, cols, s);
      std::vector<float> d = dequantize(q);
      return relativeError(w.data(), d.data(), w.size());
    };
    double tensor = err(Scheme::perTensor(bits, true));
    double channel = err(Scheme::perChannel(bits, true));
    double group = err(Scheme::grouped(bits, 16, true));
    EXPECT_LT(channel, tensor) << bits << " bits";
    EXPECT_LT(group, channel) << bits << " bits";
  }
}

//===----------------------------------------------------------------------===//
// Error and storage accounting
//===----------------------------------------------------------------------===//

TEST(RTNTest, RelativeError) {
  const float ref[] = {3.0f, 4.0f};
  const float same[] = {3.0f, 4.0f};
  const float off[] = {3.0f, 5.0f};
  const float zero[] = {0.0f, 0.0f};
  EXPECT_EQ(relativeError(ref, same, 2), 0.0);
  EXPECT_DOUBLE_EQ(relativeError(ref, off, 2), 0.2);
  EXPECT_DOUBLE_EQ(relativeError(ref, zero, 2), 1.0);
  EXPECT_EQ(relativeError(zero, zero, 2), 0.0);
  EXPECT_TRUE(std::isinf(relativeError(zero, ref, 2)));
}

// 4 x 256 at 4 bits in groups of 128: codes 4 rows * 32 words * 4 bytes = 512,
// scales 4 * 2 * 4 = 32 bytes: 544 bytes for 1024 weights = 4.25 bits each;
// zero points add 8 bytes (4.3125 bits).
TEST(RTNTest, StorageAccounting) {
  std::vector<float> w = randomMatrix(4, 256, 3);
  AffineQuantized s =
      quantizeRTN(w.data(), 4, 256, Scheme::grouped(4, 128, true));
  EXPECT_EQ(packedBytes(s), 544);
  EXPECT_DOUBLE_EQ(bitsPerWeight(s), 4.25);
  AffineQuantized a =
      quantizeRTN(w.data(), 4, 256, Scheme::grouped(4, 128, false));
  EXPECT_EQ(packedBytes(a), 552);
  EXPECT_DOUBLE_EQ(bitsPerWeight(a), 4.3125);
  // 3 bits per channel, 2 x 100: ceil(300 / 32) = 10 words a row (80 bytes)
  // and 2 scales (8 bytes) = 88 bytes for 200 weights.
  AffineQuantized c =
      quantizeRTN(w.data(), 2, 100, Scheme::perChannel(3, true));
  EXPECT_EQ(packedBytes(c), 88);
  EXPECT_DOUBLE_EQ(bitsPerWeight(c), 3.52);
}

} // namespace
