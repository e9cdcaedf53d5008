//===- GPTQTest.cpp - Tests of GPTQ quantization ----------------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//

#include "qforge/Quant/GPTQ.h"
#include "qforge/Quant/Hessian.h"

#include "QuantTestUtil.h"

#include <gtest/gtest.h>

#include <cmath>
#include <iostream>
#include <limits>
#include <string>
#include <utility>

using namespace qforge::quant;
using namespace qforge::quant::test;

namespace {

std::vector<double> identity(int64_t k) {
  std::vector<double> h(static_cast<size_t>(k * k), 0.0);
  for (int64_t i = 0; i < k; ++i)
    h[i * k + i] = 1.0;
  return h;
}

/// 1/2 sum_n d_n (H + damping I) d_n^T with d = w - approx (rows x k).
double quadraticLoss(const std::vector<float> &w,
                     const std::vector<float> &approx, int64_t rows, int64_t k,
                     const std::vector<double> &h, double damping) {
  double total = 0.0;
  for (int64_t n = 0; n < rows; ++n)
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j) {
        double hij = h[i * k + j] + (i == j ? damping : 0.0);
        total += (static_cast<double>(w[n * k + i]) - approx[n * k + i]) * hij *
                 (static_cast<double>(w[n * k + j]) - approx[n * k + j]);
      }
  return 0.5 * total;
}

/// A calibration problem: activations [rows, k], their Hessian, weights n x k.
struct Problem {
  int64_t rows, k, n;
  std::vector<float> x, w;
  std::vector<double> h;
};

Problem makeProblem(int64_t rows, int64_t k, int64_t n, unsigned seed) {
  Problem p{rows,
            k,
            n,
            correlatedActivations(rows, k, seed),
            gaussianMatrix(n, k, seed + 7),
            {}};
  ActivationStats stats(k);
  stats.add(p.x.data(), rows, k);
  p.h = stats.hessian();
  return p;
}

//===----------------------------------------------------------------------===//
// The inverse factor
//===----------------------------------------------------------------------===//

TEST(GPTQTest, UpperCholeskyOfInverse) {
  const double a[] = {4.0, 2.0, 0.4, 2.0, 5.0, 1.0, 0.4, 1.0, 3.0};
  std::vector<double> u;
  ASSERT_TRUE(upperCholeskyOfInverse(a, 3, u));
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < i; ++j)
      EXPECT_EQ(u[i * 3 + j], 0.0);
  // (U^T U) a = I.
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      double sum = 0.0;
      for (int p = 0; p < 3; ++p)
        for (int m = 0; m < 3; ++m)
          sum += u[p * 3 + i] * u[p * 3 + m] * a[m * 3 + j];
      EXPECT_NEAR(sum, i == j ? 1.0 : 0.0, 1e-12);
    }
  const double indefinite[] = {1.0, 2.0, 2.0, 1.0};
  EXPECT_FALSE(upperCholeskyOfInverse(indefinite, 2, u));
}

//===----------------------------------------------------------------------===//
// Hand-checked
//===----------------------------------------------------------------------===//

// W = [0.7, 0.33, 0.24], H = [[1, 0, 0], [0, 2, 1], [0, 1, 2]], no damping,
// 4-bit symmetric per channel: scale = 0.7 / 7 = 0.1 from the input W.
//  - column 0: 0.7 -> code 7 exactly, no error; H couples it to nothing.
//  - column 1: 0.33 -> 0.3, error 0.03. The optimal update of column 2 is
//    -0.03 * (H^-1)_12 / (H^-1)_11 = -0.03 * (-1/3) / (2/3) = +0.015, so
//    w_2 = 0.255 -> round(2.55) = 3 -> 0.3, where RTN gives round(2.4) = 2.
// Codes (+8): [15, 11, 11] against RTN's [15, 11, 10].
// Loss: with d = W - Q = [0, 0.03, -0.06], H d = [0, 0, -0.09], so
// 1/2 d H d^T = 0.0027; per column, e^2 / 2 with U_11^2 = 2/3, U_22^2 = 1/2:
// 0.03^2 / (2/3) / 2 + 0.045^2 / (1/2) / 2 = 0.000675 + 0.002025.
TEST(GPTQTest, HandChecked) {
  const float w[] = {0.7f, 0.33f, 0.24f};
  const double h[] = {1.0, 0.0, 0.0, 0.0, 2.0, 1.0, 0.0, 1.0, 2.0};
  GPTQOptions options;
  options.percDamp = 0.0;
  GPTQResult r = quantizeGPTQ(w, 1, 3, h, Scheme::perChannel(4, true), options);
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.message, "");
  EXPECT_EQ(r.damping, 0.0);
  EXPECT_FLOAT_EQ(r.quantized.scales[0], 0.1f);
  EXPECT_EQ(codesOf(r.quantized), (std::vector<uint8_t>{15, 11, 11}));
  EXPECT_EQ(codesOf(quantizeRTN(w, 1, 3, Scheme::perChannel(4, true))),
            (std::vector<uint8_t>{15, 11, 10}));
  EXPECT_NEAR(r.loss, 0.0027, 1e-8);
  EXPECT_FLOAT_EQ(r.reconstructed[2], 0.3f);
}

// With H = I nothing couples the columns, so no error is propagated and GPTQ
// is RTN exactly, for every scheme, with or without act-order.
TEST(GPTQTest, IdentityHessianEqualsRTN) {
  const int64_t rows = 6, cols = 64;
  std::vector<double> h = identity(cols);
  unsigned seed = 10;
  for (const Scheme &s : allSchemes()) {
    SCOPED_TRACE(describe(s));
    std::vector<float> w = gaussianMatrix(rows, cols, ++seed);
    AffineQuantized rtn = quantizeRTN(w.data(), rows, cols, s);
    for (bool actOrder : {false, true}) {
      GPTQOptions options;
      options.actOrder = actOrder;
      GPTQResult r = quantizeGPTQ(w.data(), rows, cols, h.data(), s, options);
      ASSERT_TRUE(r.ok) << r.message;
      EXPECT_TRUE(sameQuantized(r.quantized, rtn));
      EXPECT_EQ(r.reconstructed, dequantize(rtn));
    }
  }
}

//===----------------------------------------------------------------------===//
// Reconstruction error on correlated activations
//===----------------------------------------------------------------------===//

TEST(GPTQTest, BeatsRTNOnOutputError) {
  Problem p = makeProblem(512, 256, 128, 21);
  for (unsigned bits : {4u, 3u})
    for (int64_t group : {32, 128})
      for (bool symmetric : {true, false}) {
        Scheme s = Scheme::grouped(bits, group, symmetric);
        SCOPED_TRACE(describe(s));
        std::vector<float> rtn =
            dequantize(quantizeRTN(p.w.data(), p.n, p.k, s));
        double rtnError = outputRelativeError(p.x.data(), p.rows, p.k,
                                              p.w.data(), rtn.data(), p.n);
        double errors[2];
        for (bool actOrder : {false, true}) {
          GPTQOptions options;
          options.actOrder = actOrder;
          GPTQResult r =
              quantizeGPTQ(p.w.data(), p.n, p.k, p.h.data(), s, options);
          ASSERT_TRUE(r.ok) << r.message;
          errors[actOrder] = outputRelativeError(
              p.x.data(), p.rows, p.k, p.w.data(), r.reconstructed.data(), p.n);
          EXPECT_LT(errors[actOrder], rtnError);
        }
        std::cout << "[ GPTQ " << describe(s) << " ] output rel. error: RTN "
                  << rtnError << ", GPTQ " << errors[0] << ", GPTQ act-order "
                  << errors[1] << "\n";
      }
}

TEST(GPTQTest, PerChannelAndPerTensorBeatRTN) {
  Problem p = makeProblem(512, 128, 64, 31);
  for (const Scheme &s :
       {Scheme::perChannel(4, true), Scheme::perChannel(3, false),
        Scheme::perTensor(4, true), Scheme::perTensor(8, false),
        Scheme::grouped(2, 64, false)}) {
    SCOPED_TRACE(describe(s));
    std::vector<float> rtn = dequantize(quantizeRTN(p.w.data(), p.n, p.k, s));
    GPTQResult r = quantizeGPTQ(p.w.data(), p.n, p.k, p.h.data(), s);
    ASSERT_TRUE(r.ok) << r.message;
    double rtnError = outputRelativeError(p.x.data(), p.rows, p.k, p.w.data(),
                                          rtn.data(), p.n);
    double gptqError = outputRelativeError(p.x.data(), p.rows, p.k, p.w.data(),
                                           r.reconstructed.data(), p.n);
    EXPECT_LT(gptqError, rtnError);
    std::cout << "[ GPTQ " << describe(s) << " ] output rel. error: RTN "
              << rtnError << ", GPTQ " << gptqError << "\n";
  }
}

//===----------------------------------------------------------------------===//
// Consistency of the result
//===----------------------------------------------------------------------===//

// The codes decode exactly to the matrix GPTQ scored, and the reported loss
// is 1/2 sum_n d_n (H + lambda I) d_n^T of that matrix. With act-order and
// static groups, the parameters are RTN's of the input W in the ordinary
// group layout.
TEST(GPTQTest, DecodesToScoredMatrix) {
  Problem p = makeProblem(256, 96, 16, 41);
  for (const Scheme &s : allSchemes()) {
    for (bool actOrder : {false, true}) {
      SCOPED_TRACE(describe(s) + (actOrder ? " act-order" : ""));
      GPTQOptions options;
      options.actOrder = actOrder;
      GPTQResult r = quantizeGPTQ(p.w.data(), p.n, p.k, p.h.data(), s, options);
      ASSERT_TRUE(r.ok) << r.message;
      ASSERT_EQ(dequantize(r.quantized), r.reconstructed);
      double expected =
          quadraticLoss(p.w, r.reconstructed, p.n, p.k, p.h, r.damping);
      EXPECT_NEAR(r.loss, expected, 1e-9 * expected);
      if (actOrder || s.granularity != Granularity::Group) {
        AffineQuantized rtn = quantizeRTN(p.w.data(), p.n, p.k, s);
        EXPECT_EQ(r.quantized.scales, rtn.scales);
        EXPECT_EQ(r.quantized.zeroPoints, rtn.zeroPoints);
      }
      if (actOrder) {
        // A large-magnitude channel (every 37th) comes first.
        EXPECT_EQ(r.order[0] % 37, 0);
      }
    }
  }
}

// Lazy batching applies the same updates in the same order, so the block
// size leaves the result unchanged, bit for bit.
TEST(GPTQTest, BlockSizeDoesNotChangeResult) {
  Problem p = makeProblem(256, 160, 8, 51);
  for (bool actOrder : {false, true}) {
    SCOPED_TRACE(actOrder ? "act-order" : "input order");
    Scheme s = Scheme::grouped(3, 32, false);
    GPTQOptions options;
    options.actOrder = actOrder;
    GPTQResult reference =
        quantizeGPTQ(p.w.data(), p.n, p.k, p.h.data(), s, options);
    for (int64_t blockSize : {1, 7, 32, 100, 1000}) {
      options.blockSize = blockSize;
      GPTQResult r = quantizeGPTQ(p.w.data(), p.n, p.k, p.h.data(), s, options);
      EXPECT_TRUE(sameQuantized(r.quantized, reference.quantized))
          << "block size " << blockSize;
      EXPECT_EQ(r.loss, reference.loss) << "block size " << blockSize;
    }
  }
}

/// Solves a x = b for the symmetric positive definite m x m matrix `a`
/// (Gaussian elimination with partial pivoting, on copies).
static std::vector<double> solve(std::vector<double> a, std::vector<double> b,
                                 int64_t m) {
  for (int64_t c = 0; c < m; ++c) {
    int64_t pivot = c;
    for (int64_t r = c + 1; r < m; ++r)
      if (std::fabs(a[r * m + c]) > std::fabs(a[pivot * m + c]))
        pivot = r;
    for (int64_t j = 0; j < m; ++j)
      std::swap(a[c * m + j], a[pivot * m + j]);
    std::swap(b[c], b[pivot]);
    for (int64_t r = c + 1; r < m; ++r) {
      double f = a[r * m + c] / a[c * m + c];
      for (int64_t j = c; j < m; ++j)
        a[r * m + j] -= f * a[c * m + j];
      b[r] -= f * b[c];
    }
  }
  std::vector<double> x(static_cast<size_t>(m));
  for (int64_t r = m - 1; r >= 0; --r) {
    double sum = b[r];
    for (int64_t j = r + 1; j < m; ++j)
      sum -= a[r * m + j] * x[j];
    x[r] = sum / a[r * m + r];
  }
  return x;
}

// Dynamic groups take their scale and zero point from the error-compensated
// weights. Once the first P columns of a row are fixed to q_1, GPTQ's
// sequential updates leave the rest at the optimum of the quadratic loss
// with H' = H + damping I (the OBS update), computed here independently by
// a linear solve:  w_2' = w_2 + (w_1 - q_1) H'_12 (H'_22)^-1.
// Each group's parameters must be RTN's parameters of w_2' at its columns,
// and (so that this test can tell) differ from those of the input weights.
TEST(GPTQTest, DynamicGroupsUseCompensatedWeights) {
  const int64_t groupSize = 16;
  Problem p = makeProblem(256, 4 * groupSize, 6, 71);
  const int64_t K = p.k;
  for (bool symmetric : {true, false}) {
    SCOPED_TRACE(symmetric ? "symmetric" : "zero points");
    Scheme s = Scheme::grouped(3, groupSize, symmetric);
    GPTQOptions options;
    options.blockSize = 24; // widened to 32: groups straddle no block
    GPTQResult r = quantizeGPTQ(p.w.data(), p.n, K, p.h.data(), s, options);
    ASSERT_TRUE(r.ok) << r.message;
    int64_t differFromInput = 0, checked = 0;
    for (int64_t g = 1; g < K / groupSize; ++g) {
      const int64_t P = g * groupSize, m = K - P;
      std::vector<double> h22(static_cast<size_t>(m * m));
      for (int64_t i = 0; i < m; ++i)
        for (int64_t j = 0; j < m; ++j)
          h22[i * m + j] =
              p.h[(P + i) * K + P + j] + (i == j ? r.damping : 0.0);
      for (int64_t n = 0; n < p.n; ++n) {
        const float *w = p.w.data() + n * K;
        // rhs = (H_12)^T (w_1 - q_1)^T.
        std::vector<double> rhs(static_cast<size_t>(m), 0.0);
        for (int64_t i = 0; i < P; ++i) {
          double d = static_cast<double>(w[i]) - r.reconstructed[n * K + i];
          for (int64_t j = 0; j < m; ++j)
            rhs[j] += d * p.h[i * K + P + j];
        }
        std::vector<double> y = solve(h22, rhs, m);
        std::vector<float> compensated(static_cast<size_t>(groupSize));
        for (int64_t i = 0; i < groupSize; ++i)
          compensated[i] = static_cast<float>(w[P + i] + y[i]);
        GroupParams expected =
            computeGroupParams(compensated.data(), groupSize, s);
        GroupParams fromInput = computeGroupParams(w + P, groupSize, s);
        GroupParams got = r.quantized.params(n, P);
        SCOPED_TRACE("row " + std::to_string(n) + ", group " +
                     std::to_string(g));
        EXPECT_NEAR(got.scale, expected.scale, 1e-5 * expected.scale);
        EXPECT_EQ(got.zero, expected.zero);
        ++checked;
        if (std::fabs(fromInput.scale - expected.scale) > 0.01 * expected.scale)
          ++differFromInput;
      }
    }
    EXPECT_GT(differFromInput, checked / 2);
  }
}

//===----------------------------------------------------------------------===//
// Degenerate Hessians
//===----------------------------------------------------------------------===//

// An input channel that is always zero has H_kk = 0: its weights are
// dropped (decode to 0) and the others are quantized as usual.
TEST(GPTQTest, DeadInputChannel) {
  const int64_t rows = 128, k = 64, n = 8, dead = 5;
  std::vector<float> x = correlatedActivations(rows, k, 61);
  for (int64_t t = 0; t < rows; ++t)
    x[t * k + dead] = 0.0f;
  ActivationStats stats(k);
  stats.add(x.data(), rows, k);
  std::vector<double> h = stats.hessian();
  ASSERT_EQ(h[dead * k + dead], 0.0);
  std::vector<float> w = gaussianMatrix(n, k, 62);
  for (bool actOrder : {false, true}) {
    GPTQOptions options;
    options.actOrder = actOrder;
    GPTQResult r = quantizeGPTQ(w.data(), n, k, h.data(),
                                Scheme::grouped(4, 32, true), options);
    ASSERT_TRUE(r.ok) << r.message;
    EXPECT_EQ(r.message, "");
    for (int64_t o = 0; o < n; ++o)
      EXPECT_EQ(r.reconstructed[o * k + dead], 0.0f);
    std::vector<float> rtn =
        dequantize(quantizeRTN(w.data(), n, k, Scheme::grouped(4, 32, true)));
    EXPECT_LT(outputRelativeError(x.data(), rows, k, w.data(),
                                  r.reconstructed.data(), n),
              outputRelativeError(x.data(), rows, k, w.data(), rtn.data(), n));
  }
}

// H = [[1, 1.5], [1.5, 1]] has eigenvalues 2.5 and -0.5. Damping 0.01 and
// 0.1 do not make it positive definite, 1 does (eigenvalues 3.5, 0.5).
TEST(GPTQTest, IndefiniteHessianRaisesDamping) {
  const double h[] = {1.0, 1.5, 1.5, 1.0};
  const float w[] = {0.5f, -0.25f};
  GPTQResult r = quantizeGPTQ(w, 1, 2, h, Scheme::perChannel(4, true));
  ASSERT_TRUE(r.ok) << r.message;
  EXPECT_EQ(r.dampingRetries, 2);
  EXPECT_NEAR(r.damping, 1.0, 1e-12);
  EXPECT_NE(r.message.find("damping raised"), std::string::npos) << r.message;
}

TEST(GPTQTest, NotPositiveDefiniteFails) {
  const float w[] = {0.5f, -0.25f};
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double strong[] = {1.0, 1000.0, 1000.0, 1.0}; // eigenvalue -999
  const double negative[] = {-1.0, 0.0, 0.0, -2.0};
  const double notANumber[] = {1.0, nan, nan, 1.0};
  for (const double *h : {strong, negative, notANumber}) {
    GPTQResult r = quantizeGPTQ(w, 1, 2, h, Scheme::perChannel(4, true));
    EXPECT_FALSE(r.ok);
    EXPECT_NE(r.message.find("not positive definite"), std::string::npos)
        << r.message;
    EXPECT_EQ(r.quantized.rows, 0);
  }
}

} // namespace
