//===- SqueezeLLMTest.cpp - k-means, codebooks and outliers -----*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//

#include "qforge/Quant/Codebook.h"
#include "qforge/Quant/KMeans.h"
#include "qforge/Quant/Outliers.h"

#include "QuantTestUtil.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>

using namespace qforge::quant;
using namespace qforge::quant::test;

namespace {

std::vector<float> uniformValues(int64_t n, float lo, float hi, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float &x : v)
    x = u(rng);
  return v;
}

/// The optimal cost by trying every split of the sorted values into k
/// contiguous runs (each run's centre its weighted mean).
double bruteForceCost(std::vector<float> x, std::vector<float> s, int k) {
  std::vector<size_t> order(x.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return x[a] < x[b]; });
  std::vector<double> xs, ss;
  for (size_t i : order) {
    xs.push_back(x[i]);
    ss.push_back(s[i]);
  }
  auto runCost = [&](size_t i, size_t j) {
    double w = 0, m = 0;
    for (size_t t = i; t < j; ++t) {
      w += ss[t];
      m += ss[t] * xs[t];
    }
    if (w <= 0)
      return 0.0;
    m /= w;
    double c = 0;
    for (size_t t = i; t < j; ++t)
      c += ss[t] * (xs[t] - m) * (xs[t] - m);
    return c;
  };
  double best = std::numeric_limits<double>::infinity();
  auto recurse = [&](auto &&self, size_t start, int left, double acc) -> void {
    if (left == 1) {
      best = std::min(best, acc + runCost(start, xs.size()));
      return;
    }
    for (size_t end = start; end <= xs.size(); ++end)
      self(self, end, left - 1, acc + runCost(start, end));
  };
  recurse(recurse, 0, k, 0.0);
  return best;
}

TEST(KMeansTest, ExactMatchesBruteForce) {
  for (unsigned seed = 0; seed < 20; ++seed) {
    std::vector<float> x = uniformValues(11, -2, 2, seed);
    std::vector<float> s = uniformValues(11, 0, 3, seed + 100);
    s[seed % 11] = 0; // a weightless point
    for (int k : {2, 3, 4}) {
      KMeansResult r = weightedKMeans1D(x.data(), s.data(), 11, k);
      double best = bruteForceCost(x, s, k);
      EXPECT_NEAR(r.cost, best, 1e-9 + 1e-6 * best)
          << "seed " << seed << " k " << k;
      EXPECT_TRUE(std::is_sorted(r.centroids.begin(), r.centroids.end()));
    }
  }
}

TEST(KMeansTest, ExactNeverWorseThanLloyd) {
  for (unsigned seed = 0; seed < 10; ++seed) {
    std::vector<float> x = gaussianMatrix(1, 512, seed);
    std::vector<float> s = uniformValues(512, 0, 1, seed + 7);
    for (float &v : s)
      v = v * v * v * 50; // heavy-tailed, like Fisher information
    for (int k : {4, 8, 16}) {
      KMeansOptions lloyd;
      lloyd.solver = KMeansSolver::Lloyd;
      lloyd.seed = seed;
      KMeansResult exact = weightedKMeans1D(x.data(), s.data(), 512, k);
      KMeansResult approx = weightedKMeans1D(x.data(), s.data(), 512, k, lloyd);
      EXPECT_LE(exact.cost, approx.cost * (1 + 1e-9)) << "k " << k;
      // Lloyd from k-means++ is a good local optimum, not a poor one.
      EXPECT_LE(approx.cost, exact.cost * 1.5) << "k " << k;
    }
  }
}

TEST(KMeansTest, WeightsPullCentroids) {
  // Two values; with k = 1 the centroid is their weighted mean.
  float x[] = {0.0f, 1.0f};
  float s[] = {1.0f, 3.0f};
  EXPECT_FLOAT_EQ(weightedKMeans1D(x, s, 2, 1).centroids[0], 0.75f);
  EXPECT_FLOAT_EQ(weightedKMeans1D(x, nullptr, 2, 1).centroids[0], 0.5f);
  // A weightless point moves nothing but is still labelled.
  float y[] = {0.0f, 0.1f, 5.0f, 5.2f, 100.0f};
  float t[] = {1, 1, 1, 1, 0};
  KMeansResult r = weightedKMeans1D(y, t, 5, 2);
  EXPECT_NEAR(r.centroids[0], 0.05f, 1e-6);
  EXPECT_NEAR(r.centroids[1], 5.1f, 1e-6);
  EXPECT_EQ(r.labels[4], 1);
}

TEST(KMeansTest, FewerDistinctValuesThanCentroids) {
  float x[] = {1, 1, 2, 2, 2, 1};
  for (KMeansSolver solver : {KMeansSolver::Exact, KMeansSolver::Lloyd}) {
    KMeansOptions o;
    o.solver = solver;
    KMeansResult r = weightedKMeans1D(x, nullptr, 6, 8, o);
    ASSERT_EQ(r.centroids.size(), 8u);
    EXPECT_EQ(r.cost, 0.0);
    for (int i = 0; i < 6; ++i)
      EXPECT_EQ(r.centroids[r.labels[size_t(i)]], x[i]);
  }
}

TEST(CodebookTest, RoundTripAndWordBoundaries) {
  // 3-bit codes with 37 columns: codes cross 32-bit word boundaries.
  const int64_t rows = 5, cols = 37;
  std::vector<float> w = gaussianMatrix(rows, cols, 3);
  for (unsigned bits : {2u, 3u, 4u}) {
    CodebookQuantized q = quantizeCodebook(w.data(), rows, cols, bits, {});
    std::vector<float> d = dequantize(q);
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t c = 0; c < cols; ++c) {
        // Each weight decodes to the entry of its row's table nearest to it.
        const float *lut = q.lut.data() + n * q.entries();
        float nearest =
            *std::min_element(lut, lut + q.entries(), [&](float a, float b) {
              return std::fabs(a - w[size_t(n * cols + c)]) <
                     std::fabs(b - w[size_t(n * cols + c)]);
            });
        EXPECT_EQ(d[size_t(n * cols + c)], nearest)
            << bits << " " << n << " " << c;
      }
  }
  // 8-bit: every value of a 37-wide row has its own entry.
  CodebookQuantized q8 = quantizeCodebook(w.data(), rows, cols, 8, {});
  EXPECT_EQ(dequantize(q8), w);
}

TEST(CodebookTest, SensitivityLowersWeightedError) {
  const int64_t rows = 16, cols = 256;
  std::vector<float> w = gaussianMatrix(rows, cols, 11);
  std::vector<float> column(size_t(cols), 1.0f);
  for (int64_t c = 0; c < cols; c += 9)
    column[size_t(c)] = 100.0f; // important input channels
  auto weightedError = [&](const CodebookQuantized &q) {
    std::vector<float> d = dequantize(q);
    double e = 0;
    for (int64_t n = 0; n < rows; ++n)
      for (int64_t c = 0; c < cols; ++c) {
        double diff = w[size_t(n * cols + c)] - d[size_t(n * cols + c)];
        e += column[size_t(c)] * diff * diff;
      }
    return e;
  };
  Sensitivity perColumn;
  perColumn.perColumn = column.data();
  double plain = weightedError(quantizeCodebook(w.data(), rows, cols, 3, {}));
  double weighted =
      weightedError(quantizeCodebook(w.data(), rows, cols, 3, perColumn));
  EXPECT_LT(weighted, 0.8 * plain);
  // Per-weight sensitivities equal to the per-column ones give the same.
  std::vector<float> full(static_cast<size_t>(rows * cols));
  for (int64_t n = 0; n < rows; ++n)
    std::copy(column.begin(), column.end(), full.begin() + n * cols);
  Sensitivity perWeight;
  perWeight.perWeight = full.data();
  EXPECT_EQ(quantizeCodebook(w.data(), rows, cols, 3, perWeight).lut,
            quantizeCodebook(w.data(), rows, cols, 3, perColumn).lut);
}

TEST(OutliersTest, FenceRangeHitsTarget) {
  std::vector<FenceSummary> summaries;
  std::vector<std::vector<float>> mats;
  int64_t total = 0;
  for (unsigned seed = 0; seed < 3; ++seed) {
    std::vector<float> w = gaussianMatrix(64, 300, seed);
    for (size_t i = seed; i < w.size(); i += 97)
      w[i] *= 8.0f; // heavy tail
    summaries.push_back(summarizeWeights(w.data(), int64_t(w.size())));
    total += int64_t(w.size());
    mats.push_back(std::move(w));
  }
  double r = solveFenceRange(summaries, total, 0.0045);
  EXPECT_GT(r, 0.0);
  int64_t marked = 0;
  for (size_t m = 0; m < mats.size(); ++m) {
    std::vector<uint8_t> mask(mats[m].size(), 0);
    marked += markOutsideFence(mats[m].data(), int64_t(mats[m].size()),
                               summaries[m].threshold(r), mask.data());
  }
  // The subsample holds every weight here, so the count is exact up to ties.
  EXPECT_NEAR(double(marked), 0.0045 * double(total), 2.0);
}

TEST(OutliersTest, ExtractAndResidualsAreExact) {
  const int64_t rows = 6, cols = 40;
  std::vector<float> w = gaussianMatrix(rows, cols, 5);
  std::vector<float> sens = uniformValues(rows * cols, 0, 1, 6);
  std::vector<uint8_t> mask(size_t(rows * cols), 0);
  EXPECT_EQ(markMostSensitive(sens.data(), rows * cols, 0.05, mask.data()), 12);
  EXPECT_EQ(
      mask[size_t(std::max_element(sens.begin(), sens.end()) - sens.begin())],
      1);
  markOutsideFence(w.data(), rows * cols, 1.5, mask.data());
  std::vector<float> dense = w;
  SparseRows s = extractMarked(dense.data(), rows, cols, mask.data());
  EXPECT_EQ(s.nnz(), std::count(mask.begin(), mask.end(), 1));
  ASSERT_EQ(s.rowPtr.size(), size_t(rows + 1));
  EXPECT_EQ(s.positions(), mask);
  for (size_t i = 0; i < mask.size(); ++i) {
    if (mask[i]) {
      EXPECT_EQ(dense[i], 0.0f);
    }
  }
  CodebookQuantized q =
      quantizeCodebook(dense.data(), rows, cols, 3, {}, mask.data());
  std::vector<float> decoded = dequantize(q);
  storeResiduals(s, decoded.data());
  addSparse(s, decoded.data());
  for (size_t i = 0; i < mask.size(); ++i) {
    if (mask[i]) {
      EXPECT_NEAR(decoded[i], w[i], 1e-6f) << i;
    }
  }
}

TEST(CodebookTest, HalfTables) {
  // Nearest f16, ties to even: 1 + 2^-11 lies halfway between 1 and 1 + 2^-10.
  EXPECT_EQ(halfBits(1.0f), 0x3C00);
  EXPECT_EQ(halfBits(-2.0f), 0xC000);
  EXPECT_EQ(halfBits(0.15f), 0x30CD);
  EXPECT_EQ(halfBits(1.0f + 0x1p-11f), 0x3C00);
  EXPECT_EQ(halfBits(1.0f + 3 * 0x1p-11f), 0x3C02);
  EXPECT_EQ(halfBits(65504.0f), 0x7BFF);
  std::vector<float> w = gaussianMatrix(8, 64, 5);
  CodebookQuantized q = quantizeCodebook(w.data(), 8, 64, 3, {}, nullptr);
  CodebookQuantized h = q;
  roundTableToHalf(h);
  EXPECT_TRUE(h.halfTable);
  EXPECT_EQ(h.codes, q.codes);
  EXPECT_EQ(packedBytes(q) - packedBytes(h), int64_t(q.lut.size() * 2));
  for (size_t i = 0; i < q.lut.size(); ++i) {
    EXPECT_EQ(h.lut[i], static_cast<float>(static_cast<_Float16>(q.lut[i])));
    EXPECT_NEAR(h.lut[i], q.lut[i], std::abs(q.lut[i]) * 0x1p-11f);
  }
}

} // namespace
