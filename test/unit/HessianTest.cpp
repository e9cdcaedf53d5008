//===- HessianTest.cpp - Tests of calibration statistics --------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//

#include "qforge/Quant/Hessian.h"

#include "QuantTestUtil.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace qforge::quant;
using namespace qforge::quant::test;

namespace {

// Rows (1, 2) and (3, -1):
//   sum x x^T = [[1 + 9, 2 - 3], [2 - 3, 4 + 1]] = [[10, -1], [-1, 5]],
//   hessian(2) = 2 / 2 * that, mean |x| = (2, 1.5), mean x^2 = (5, 2.5).
TEST(ActivationStatsTest, HandChecked) {
  const float x[] = {1.0f, 2.0f, 3.0f, -1.0f};
  ActivationStats stats(2);
  stats.add(x, 2, 2);
  EXPECT_EQ(stats.rows(), 2);
  EXPECT_EQ(stats.channels(), 2);
  EXPECT_EQ(stats.gram(), (std::vector<double>{10.0, -1.0, -1.0, 5.0}));
  EXPECT_EQ(stats.hessian(), (std::vector<double>{10.0, -1.0, -1.0, 5.0}));
  EXPECT_EQ(stats.hessian(1.0), (std::vector<double>{5.0, -0.5, -0.5, 2.5}));
  EXPECT_EQ(stats.meanAbs(), (std::vector<float>{2.0f, 1.5f}));
  EXPECT_EQ(stats.meanSquare(), (std::vector<float>{5.0f, 2.5f}));
}

TEST(ActivationStatsTest, Empty) {
  ActivationStats stats(3);
  EXPECT_EQ(stats.rows(), 0);
  EXPECT_EQ(stats.hessian(), std::vector<double>(9, 0.0));
  EXPECT_EQ(stats.meanAbs(), std::vector<float>(3, 0.0f));
}

// Batches accumulate to the same sums, bit for bit, as one call.
TEST(ActivationStatsTest, BatchesAccumulate) {
  const int64_t rows = 100, k = 24;
  std::vector<float> x = correlatedActivations(rows, k, 5);
  ActivationStats whole(k), parts(k);
  whole.add(x.data(), rows, k);
  parts.add(x.data(), 30, k);
  parts.add(x.data() + 30 * k, 70, k);
  EXPECT_EQ(parts.rows(), rows);
  EXPECT_EQ(whole.gram(), parts.gram());
  EXPECT_EQ(whole.meanAbs(), parts.meanAbs());
  std::vector<double> g = whole.gram();
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j)
      ASSERT_EQ(g[i * k + j], g[j * k + i]);
}

// The summary qf-calibrate stores (XᵀX / rows, mean |x|, rows) restores the
// statistics: the hand-checked case above round-trips.
TEST(ActivationStatsTest, FromSummary) {
  ActivationStats s =
      ActivationStats::fromSummary(2, {5.0, -0.5, -0.5, 2.5}, {2.0f, 1.5f});
  EXPECT_EQ(s.rows(), 2);
  EXPECT_EQ(s.channels(), 2);
  EXPECT_EQ(s.gram(), (std::vector<double>{10.0, -1.0, -1.0, 5.0}));
  EXPECT_EQ(s.meanAbs(), (std::vector<float>{2.0f, 1.5f}));
}

// relativeOutputError by hand. G = I: ref (3, 4), approx (3, 0) -> the
// difference (0, 4): sqrt(16 / 25) = 0.8. G = [[10, -1], [-1, 5]] (the rows
// (1, 2), (3, -1) above): X ref^T = (11, 5), X approx^T = (3, 9), so
// ||(8, -4)|| / ||(11, 5)|| = sqrt(80 / 146).
TEST(RelativeOutputErrorTest, HandChecked) {
  const float ref[] = {3.0f, 4.0f}, approx[] = {3.0f, 0.0f};
  const double identity[] = {1.0, 0.0, 0.0, 1.0};
  EXPECT_DOUBLE_EQ(relativeOutputError(ref, approx, 1, 2, identity), 0.8);
  const double gram[] = {10.0, -1.0, -1.0, 5.0};
  EXPECT_DOUBLE_EQ(relativeOutputError(ref, approx, 1, 2, gram),
                   std::sqrt(80.0 / 146.0));
  EXPECT_EQ(relativeOutputError(ref, ref, 1, 2, gram), 0.0);
  const float zero[] = {0.0f, 0.0f};
  EXPECT_EQ(relativeOutputError(zero, approx, 1, 2, gram), 0.0);
}

// Several rows add up: two output channels, each with its own error.
TEST(RelativeOutputErrorTest, RowsAccumulate) {
  const float ref[] = {1.0f, 0.0f, 0.0f, 2.0f};
  const float approx[] = {0.0f, 0.0f, 0.0f, 2.0f};
  const double identity[] = {1.0, 0.0, 0.0, 1.0};
  EXPECT_DOUBLE_EQ(relativeOutputError(ref, approx, 2, 2, identity),
                   std::sqrt(1.0 / 5.0));
}

} // namespace
