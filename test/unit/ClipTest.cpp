//===- ClipTest.cpp - Tests of RTN with a clipping search -------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//

#include "qforge/Quant/Clip.h"

#include "QuantTestUtil.h"

#include <gtest/gtest.h>

#include <iostream>

using namespace qforge::quant;
using namespace qforge::quant::test;

namespace {

/// Gaussian weights with a few outliers (1 in 50 scaled by 6).
std::vector<float> weightsWithOutliers(int64_t rows, int64_t cols,
                                       unsigned seed) {
  std::vector<float> w = gaussianMatrix(rows, cols, seed);
  for (size_t i = 0; i < w.size(); i += 50)
    w[i] *= 6.0f;
  return w;
}

double weightError(const std::vector<float> &w, const AffineQuantized &q) {
  std::vector<float> d = dequantize(q);
  return relativeError(w.data(), d.data(), w.size());
}

TEST(ClipTest, Grid) {
  std::vector<float> grid = clipGrid({});
  ASSERT_EQ(grid.size(), 21u);
  EXPECT_EQ(grid.front(), 1.0f);
  EXPECT_FLOAT_EQ(grid[1], 0.99f);
  EXPECT_FLOAT_EQ(grid.back(), 0.8f);
  std::vector<float> coarse = clipGrid({0.5f, 0.025f});
  ASSERT_EQ(coarse.size(), 21u);
  EXPECT_FLOAT_EQ(coarse.back(), 0.5f);
  EXPECT_EQ(clipGrid({0.0f, 0.01f}), std::vector<float>{1.0f});
}

// 2-bit symmetric, w = [1, 0.6, 0.6, 0.6], q in {-1, 0, 1}: with scale c
// every weight decodes to c (0.6 / c >= 0.5), so the error is
// (1 - c)^2 + 3 (0.6 - c)^2, least at c = 0.7 (0.12; RTN's c = 1 gives
// 0.48). On the default grid (c >= 0.8) the best is c = 0.8 (0.16).
TEST(ClipTest, HandChecked) {
  const float w[] = {1.0f, 0.6f, 0.6f, 0.6f};
  Scheme s = Scheme::perChannel(2, true);
  std::vector<float> chosen;
  AffineQuantized q = quantizeRTNClipped(w, 1, 4, s, {}, {}, &chosen);
  EXPECT_FLOAT_EQ(q.scales[0], 0.8f);
  EXPECT_FLOAT_EQ(chosen[0], 0.8f);
  EXPECT_EQ(codesOf(q), (std::vector<uint8_t>{3, 3, 3, 3}));
  AffineQuantized wide = quantizeRTNClipped(w, 1, 4, s, {0.5f, 0.01f});
  EXPECT_FLOAT_EQ(wide.scales[0], 0.7f);
  EXPECT_EQ(quantizeRTN(w, 1, 4, s).scales[0], 1.0f);

  // Channel 0 weighted 1000: c = 0.8 costs 1000 * 0.04 = 40 > 0.48, so RTN's
  // range (c = 1) stays. A Gram matrix diag(1000, 1, 1, 1) says the same.
  const float importance[] = {1000.0f, 1.0f, 1.0f, 1.0f};
  ClipWeighting weighted;
  weighted.channelImportance = importance;
  EXPECT_EQ(quantizeRTNClipped(w, 1, 4, s, {}, weighted).scales[0], 1.0f);
  const double gram[] = {1000, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1};
  ClipWeighting byGram;
  byGram.gram = gram;
  EXPECT_EQ(quantizeRTNClipped(w, 1, 4, s, {}, byGram).scales[0], 1.0f);
}

// Every table entry holds the RTN parameters of its range shrunk by the
// chosen factor, and the weight error never exceeds RTN's.
TEST(ClipTest, NeverWorseThanRTN) {
  const int64_t rows = 6, cols = 64;
  unsigned seed = 70;
  for (const Scheme &s : allSchemes()) {
    SCOPED_TRACE(describe(s));
    std::vector<float> w = weightsWithOutliers(rows, cols, ++seed);
    std::vector<float> chosen;
    AffineQuantized q =
        quantizeRTNClipped(w.data(), rows, cols, s, {}, {}, &chosen);
    int64_t groups = s.numGroups(cols);
    for (int64_t r = 0; r < s.scaleRows(rows); ++r)
      for (int64_t g = 0; g < groups; ++g) {
        ValueRange range =
            regionRange(w.data(), cols, groupRegion(s, rows, cols, r, g));
        float c = chosen[r * groups + g];
        GroupParams p = computeGroupParams({range.lo * c, range.hi * c}, s);
        EXPECT_EQ(q.scales[r * groups + g], p.scale);
      }
    EXPECT_LE(weightError(w, q),
              weightError(w, quantizeRTN(w.data(), rows, cols, s)));
  }
}

TEST(ClipTest, LowersWeightError) {
  const int64_t rows = 64, cols = 256;
  std::vector<float> w = weightsWithOutliers(rows, cols, 80);
  for (unsigned bits : {4u, 3u})
    for (int64_t group : {32, 128})
      for (bool symmetric : {true, false}) {
        Scheme s = Scheme::grouped(bits, group, symmetric);
        SCOPED_TRACE(describe(s));
        double rtn = weightError(w, quantizeRTN(w.data(), rows, cols, s));
        double clipped =
            weightError(w, quantizeRTNClipped(w.data(), rows, cols, s));
        EXPECT_LT(clipped, rtn);
        std::cout << "[ Clip " << describe(s) << " ] weight rel. error: RTN "
                  << rtn << ", RTN+clip " << clipped << "\n";
      }
}

// Weighted by a Gram matrix that is diagonal, the search chooses exactly as
// with the same per-channel importance.
TEST(ClipTest, DiagonalGramMatchesImportance) {
  const int64_t rows = 8, cols = 64;
  std::vector<float> w = weightsWithOutliers(rows, cols, 90);
  std::vector<float> importance = gaussianMatrix(1, cols, 91);
  std::vector<double> gram(cols * cols, 0.0);
  for (int64_t k = 0; k < cols; ++k) {
    importance[k] *= importance[k];
    gram[k * cols + k] = importance[k];
  }
  ClipWeighting byImportance, byGram;
  byImportance.channelImportance = importance.data();
  byGram.gram = gram.data();
  for (const Scheme &s :
       {Scheme::grouped(3, 16, false), Scheme::perChannel(4, true),
        Scheme::perTensor(2, false)}) {
    SCOPED_TRACE(describe(s));
    AffineQuantized a =
        quantizeRTNClipped(w.data(), rows, cols, s, {}, byImportance);
    AffineQuantized b = quantizeRTNClipped(w.data(), rows, cols, s, {}, byGram);
    EXPECT_TRUE(sameQuantized(a, b));
  }
}

} // namespace
