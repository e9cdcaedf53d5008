//===- Hessian.h - Calibration statistics of a linear's input ---*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// Statistics of the input X ([rows, K], one calibration token per row) of a
// linear layer Y = X W^T, accumulated over any number of batches:
//
//   sum_{t} x_t x_t^T   (K x K, accumulated in double precision): the Gram
//                       matrix; the layer's output error for a weight error D
//                       (N x K) is ||X D^T||^2 = sum_n d_n (sum_t x_t x_t^T)
//                       d_n^T, and GPTQ's Hessian is 2/rows times it;
//   mean_t |x_tk|       per input channel k: AWQ's activation magnitude s_x;
//   rows                the number of tokens seen.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_QUANT_HESSIAN_H
#define QFORGE_QUANT_HESSIAN_H

#include <cstdint>
#include <vector>

namespace qforge::quant {

class ActivationStats {
public:
  /// Statistics of a layer with `channels` input channels, no rows yet.
  explicit ActivationStats(int64_t channels);

  /// Statistics restored from their summary: `rows` tokens whose
  /// (1/rows) Σ x xᵀ is `gramOverRows` (K x K, row-major) and whose mean
  /// |x| per channel is `meanAbs` (what qf-calibrate stores in the IR).
  static ActivationStats fromSummary(int64_t rows,
                                     const std::vector<double> &gramOverRows,
                                     const std::vector<float> &meanAbs);

  /// Adds `rows` tokens, `x` row-major [rows, k]; `k` must equal channels().
  void add(const float *x, int64_t rows, int64_t k);

  int64_t channels() const { return channels_; }
  /// Tokens accumulated so far.
  int64_t rows() const { return rows_; }

  /// sum_t x_t x_t^T, row-major K x K.
  std::vector<double> gram() const;
  /// factor / rows * sum_t x_t x_t^T; factor 2 gives GPTQ's Hessian of
  /// ||X W^T - X Q^T||^2 / rows. All zeros before any row is added.
  std::vector<double> hessian(double factor = 2.0) const;
  /// mean_t |x_tk| per channel (AWQ's s_x); zeros before any row is added.
  std::vector<float> meanAbs() const;
  /// mean_t x_tk^2 per channel, the diagonal of hessian(1.0).
  std::vector<float> meanSquare() const;

private:
  int64_t channels_;
  int64_t rows_ = 0;
  /// Upper triangle (j >= i) of sum_t x_t x_t^T, row-major K x K.
  std::vector<double> upper_;
  std::vector<double> sumAbs_;
};

/// ||X ref^T - X approx^T|| / ||X ref^T|| for the inputs X of a linear whose
/// Gram matrix X^T X is `gram` (k x k, or any multiple of it): the relative
/// output error of replacing weights `ref` by `approx` (rows x k, row-major),
/// in one pass over the rows. 0 when X ref^T is 0.
double relativeOutputError(const float *ref, const float *approx, int64_t rows,
                           int64_t k, const double *gram);

} // namespace qforge::quant

#endif // QFORGE_QUANT_HESSIAN_H
