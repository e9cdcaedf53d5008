//===- AWQTest.cpp - Tests of activation-aware quantization -----*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//

#include "qforge/Quant/AWQ.h"

#include "QuantTestUtil.h"

#include <gtest/gtest.h>

#include <iostream>

using namespace qforge::quant;
using namespace qforge::quant::test;

namespace {

// s_x = (1, 4, 16), alpha = 0.5: s = (1, 2, 4), normalized by
// sqrt(4 * 1) = 2: (0.5, 1, 2). alpha = 0 gives s = 1; a channel that is
// always 0 gets the floor 1e-4 before normalization.
TEST(AWQTest, Scales) {
  EXPECT_EQ(awqScales({1.0f, 4.0f, 16.0f}, 0.5f),
            (std::vector<float>{0.5f, 1.0f, 2.0f}));
  EXPECT_EQ(awqScales({3.0f, 0.0f, 7.0f}, 0.0f),
            (std::vector<float>{1.0f, 1.0f, 1.0f}));
  std::vector<float> s = awqScales({0.0f, 1.0f}, 0.5f); // (1e-4, 1) / 1e-2
  EXPECT_FLOAT_EQ(s[0], 0.01f);
  EXPECT_FLOAT_EQ(s[1], 100.0f);
}

/// Calibration activations [rows, k] and three members (like q, k and v)
/// of n rows each reading them.
struct Set {
  int64_t rows, k, n;
  std::vector<float> x;
  ActivationStats stats;
  std::vector<std::vector<float>> weights;
  std::vector<AWQMember> members;
};

Set makeSet(int64_t rows, int64_t k, int64_t n, unsigned seed) {
  Set set{rows, k, n, correlatedActivations(rows, k, seed), ActivationStats(k),
          {},   {}};
  set.stats.add(set.x.data(), rows, k);
  for (unsigned i = 1; i <= 3; ++i)
    set.weights.push_back(gaussianMatrix(n, k, seed + i));
  for (const std::vector<float> &w : set.weights)
    set.members.push_back({w.data(), n, true});
  return set;
}

// With alpha = 0 only, s = 1 and, without clipping, AWQ is RTN.
TEST(AWQTest, AlphaZeroOnlyEqualsRTN) {
  const int64_t k = 64, n = 8;
  Set set = makeSet(64, k, n, 100);
  AWQOptions options;
  options.gridSize = 1;
  options.clip = false;
  Scheme s = Scheme::grouped(4, 32, false);
  AWQResult r = searchAWQ(set.members, set.stats, s, options);
  EXPECT_EQ(r.alpha, 0.0f);
  EXPECT_EQ(r.scales, std::vector<float>(k, 1.0f));
  ASSERT_EQ(r.quantized.size(), 3u);
  for (size_t m = 0; m < 3; ++m)
    EXPECT_TRUE(sameQuantized(r.quantized[m],
                              quantizeRTN(set.weights[m].data(), n, k, s)));
  EXPECT_EQ(r.finalLoss, r.rtnLoss);
  EXPECT_EQ(r.lossByAlpha, std::vector<double>{r.rtnLoss});
}

TEST(AWQTest, BeatsRTNOnOutputError) {
  const int64_t rows = 512, k = 256, n = 64;
  Set set = makeSet(rows, k, n, 110);
  const std::vector<float> &x = set.x;
  // The root mean square of the members' relative output errors, from the
  // activations directly.
  auto setError = [&](const std::vector<std::vector<float>> &approx) {
    double sum = 0.0;
    for (size_t m = 0; m < 3; ++m) {
      double e = outputRelativeError(x.data(), rows, k, set.weights[m].data(),
                                     approx[m].data(), n);
      sum += e * e;
    }
    return std::sqrt(sum / 3.0);
  };
  for (const Scheme &s :
       {Scheme::grouped(4, 32, true), Scheme::grouped(4, 128, true),
        Scheme::grouped(3, 32, true), Scheme::grouped(3, 128, false)}) {
    SCOPED_TRACE(describe(s));
    std::vector<std::vector<float>> rtn, scaled, clipped;
    for (size_t m = 0; m < 3; ++m)
      rtn.push_back(dequantize(quantizeRTN(set.weights[m].data(), n, k, s)));
    AWQOptions options;
    options.clip = false;
    AWQResult noClip = searchAWQ(set.members, set.stats, s, options);
    AWQResult r = searchAWQ(set.members, set.stats, s);
    for (size_t m = 0; m < 3; ++m) {
      scaled.push_back(awqReconstruct(noClip.quantized[m], noClip.scales));
      clipped.push_back(awqReconstruct(r.quantized[m], r.scales));
    }
    double rtnError = setError(rtn), scaledError = setError(scaled),
           awqError = setError(clipped);
    EXPECT_GT(r.alpha, 0.0f);
    EXPECT_EQ(r.alpha, noClip.alpha);
    EXPECT_LT(scaledError, rtnError);
    EXPECT_LT(awqError, rtnError);
    EXPECT_LE(r.finalLoss, r.scaledLoss);
    EXPECT_LE(r.scaledLoss, r.rtnLoss);
    std::cout << "[ AWQ " << describe(s) << " ] alpha " << r.alpha
              << ", output rel. error: RTN " << rtnError << ", AWQ scale "
              << scaledError << ", AWQ scale+clip " << awqError << "\n";
  }
}

/// ||X W^T - X A^T||^2 from the activations ([rows, k]) directly.
double directSquaredError(const std::vector<float> &x, int64_t rows, int64_t k,
                          const float *w, const float *approx, int64_t n) {
  double total = 0.0;
  for (int64_t t = 0; t < rows; ++t)
    for (int64_t o = 0; o < n; ++o) {
      double d = 0.0;
      for (int64_t i = 0; i < k; ++i)
        d += static_cast<double>(x[t * k + i]) *
             (static_cast<double>(w[o * k + i]) - approx[o * k + i]);
      total += d * d;
    }
  return total;
}

// The loss computed from the Gram matrix is the mean squared output error
// on the activations; a member that opts out of clipping is RTN of
// W diag(s).
TEST(AWQTest, LossIsOutputMSE) {
  const int64_t rows = 200, k = 96, n = 16;
  Set set = makeSet(rows, k, n, 120);
  const std::vector<float> &x = set.x;
  set.members[0].clip = false;
  Scheme s = Scheme::grouped(4, 32, true);
  AWQResult r = searchAWQ(set.members, set.stats, s);
  double total = 0.0;
  for (size_t m = 0; m < 3; ++m) {
    std::vector<float> approx = awqReconstruct(r.quantized[m], r.scales);
    total +=
        directSquaredError(x, rows, k, set.weights[m].data(), approx.data(), n);
  }
  double mse = total / static_cast<double>(rows * 3 * n);
  EXPECT_NEAR(r.finalLoss, mse, 1e-9 * mse);
  ASSERT_EQ(r.lossByAlpha.size(), 20u);
  EXPECT_EQ(r.lossByAlpha[0], r.rtnLoss);

  std::vector<float> scaled(set.weights[0]);
  for (int64_t o = 0; o < n; ++o)
    for (int64_t i = 0; i < k; ++i)
      scaled[o * k + i] *= r.scales[i];
  EXPECT_TRUE(
      sameQuantized(r.quantized[0], quantizeRTN(scaled.data(), n, k, s)));
}

// quantizeScaled, given a member's W diag(s) and the Gram matrix of the
// scaled inputs, reproduces searchAWQ's final matrices (clipped or not);
// without clipping it is RTN. A weight whose rows are scaled afterwards (as
// a previous linear receiving a later group's fold) is quantized from its
// final rows: with RTN a row scaled by a power of two keeps its codes and
// scales its scales.
TEST(AWQTest, QuantizeScaledMatchesSearch) {
  const int64_t rows = 200, k = 96, n = 16;
  Set set = makeSet(rows, k, n, 130);
  set.members[1].clip = false;
  Scheme s = Scheme::grouped(3, 32, true);
  AWQResult r = searchAWQ(set.members, set.stats, s);
  std::vector<double> gram = set.stats.gram();
  for (int64_t i = 0; i < k; ++i)
    for (int64_t j = 0; j < k; ++j)
      gram[i * k + j] /= static_cast<double>(r.scales[i]) * r.scales[j];
  for (size_t m = 0; m < 3; ++m) {
    std::vector<float> scaled(set.weights[m]);
    for (int64_t o = 0; o < n; ++o)
      for (int64_t i = 0; i < k; ++i)
        scaled[o * k + i] *= r.scales[i];
    AffineQuantized q =
        quantizeScaled(scaled.data(), n, k, s, gram.data(), set.members[m].clip,
                       ClipOptions{0.5f, 0.025f});
    EXPECT_TRUE(sameQuantized(q, r.quantized[m])) << "member " << m;
    AffineQuantized plain =
        quantizeScaled(scaled.data(), n, k, s, gram.data(), false, {});
    EXPECT_TRUE(sameQuantized(plain, quantizeRTN(scaled.data(), n, k, s)));
  }

  // Rows scaled by 2^-j (exact in float): codes unchanged, scales scaled.
  std::vector<float> scaled(set.weights[2]);
  for (int64_t o = 0; o < n; ++o)
    for (int64_t i = 0; i < k; ++i)
      scaled[o * k + i] *= r.scales[i];
  std::vector<float> rowScaled(scaled);
  for (int64_t o = 0; o < n; ++o)
    for (int64_t i = 0; i < k; ++i)
      rowScaled[o * k + i] /= static_cast<float>(1 << (o % 3));
  AffineQuantized a =
      quantizeScaled(scaled.data(), n, k, s, gram.data(), false, {});
  AffineQuantized b =
      quantizeScaled(rowScaled.data(), n, k, s, gram.data(), false, {});
  EXPECT_EQ(a.codes, b.codes);
  for (int64_t o = 0; o < n; ++o)
    for (int64_t g = 0; g < k / 32; ++g)
      EXPECT_FLOAT_EQ(b.scales[o * (k / 32) + g],
                      a.scales[o * (k / 32) + g] /
                          static_cast<float>(1 << (o % 3)));
}

} // namespace
