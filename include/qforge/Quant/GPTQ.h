//===- GPTQ.h - GPTQ weight quantization ------------------------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// GPTQ (Frantar et al., 2022) quantizes W (N x K) one input channel (column)
// at a time and, after each column, moves the weights not yet quantized to
// compensate its rounding error, minimizing per row the quadratic loss
//
//   E(q_n) = 1/2 (w_n - q_n) H (w_n - q_n)^T,
//
// where H (K x K) is the Hessian of the layer's output error on calibration
// inputs, e.g. ActivationStats::hessian() = 2/rows * sum_t x_t x_t^T.
//
// Steps:
//  1. Dead inputs: a channel with H_kk = 0 never carries signal; it gets
//     H_kk = 1 and W[:, k] = 0.
//  2. Order: input order, or (act-order) by descending H_kk, so the channels
//     with the largest inputs are quantized first while there is the most
//     freedom left to compensate their errors.
//  3. Damping: lambda = percDamp * mean(diag H) is added to H's diagonal. If
//     H + lambda I is not positive definite, lambda is multiplied by 10 and
//     the factorization retried (maxDampingRetries times).
//  4. U = the upper Cholesky factor of (H + lambda I)^-1 (U^T U = H^-1), in
//     quantization order. Row p of U holds what the optimal update needs
//     once columns before p are fixed: the remaining-inverse diagonal is
//     U_pp^2, and its row p is U_pp * U[p, :].
//  5. For each column p in order, for each row: q = dequant(quant(w_p)),
//     e = (w_p - q) / U_pp, and every later column c gets w_c -= e * U_pc.
//     The loss grows by e^2 / 2. Updates are applied lazily: within a block
//     of blockSize columns immediately, to the columns after the block once
//     the block is done (one rank-blockSize update). Each column receives
//     its updates in the same order either way, so the block size does not
//     change the result.
//
// Group parameters (scale, zero point):
//  - per tensor / per channel: RTN parameters of the (dead-zeroed) input W,
//    computed once up front;
//  - groups, dynamic (default): the RTN parameters of the group's columns of
//    the current, error-compensated W, computed when its first column is
//    reached (blocks are widened to a multiple of the group size so that all
//    of a group's columns are up to date at that point);
//  - groups, static (staticGroups, and always with actOrder): the RTN
//    parameters of the input W's groups, computed once up front. Groups are
//    the ordinary ones (column k uses group k / groupSize) whatever the
//    quantization order, so act-order needs no permutation at inference.
//
// The result is in the ordinary, unpermuted layout. The reported loss is the
// sum of the per-column loss increases, which equals
// 1/2 sum_n d_n (H + lambda I) d_n^T with d = W' - dequant(Q) (W' the input
// with dead columns zeroed, H after the dead-channel fix).
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_QUANT_GPTQ_H
#define QFORGE_QUANT_GPTQ_H

#include "qforge/Quant/RTN.h"

#include <string>
#include <vector>

namespace qforge::quant {

struct GPTQOptions {
  /// lambda = percDamp * mean(diag H).
  double percDamp = 0.01;
  /// Columns per lazy-update block (> 0).
  int64_t blockSize = 128;
  /// Quantize columns in order of descending H_kk; implies staticGroups.
  bool actOrder = false;
  /// Group parameters from the input W, computed once up front.
  bool staticGroups = false;
  /// Times lambda is multiplied by 10 when H + lambda I is not positive
  /// definite.
  int maxDampingRetries = 4;
};

struct GPTQResult {
  /// False when H could not be factorized; `quantized` is then empty.
  bool ok = false;
  /// Empty when all went as asked; otherwise says why quantization failed or
  /// that damping had to be raised.
  std::string message;
  AffineQuantized quantized;
  /// The matrix the codes decode to, row-major N x K: dequantize(quantized).
  std::vector<float> reconstructed;
  /// Sum of the per-column loss increases e^2 / 2 (see above).
  double loss = 0.0;
  /// The lambda used and how many times it was raised.
  double damping = 0.0;
  int dampingRetries = 0;
  /// Input channels in the order they were quantized.
  std::vector<int64_t> order;
};

/// GPTQ quantization of the row-major rows x cols matrix `w`, with `hessian`
/// a row-major symmetric cols x cols matrix. The scheme must be valid.
GPTQResult quantizeGPTQ(const float *w, int64_t rows, int64_t cols,
                        const double *hessian, const Scheme &scheme,
                        const GPTQOptions &options = {});

/// For a symmetric positive definite k x k matrix `a` (row-major), sets `u`
/// to the upper triangular U with U^T U = a^-1. Returns false, leaving `u`
/// unspecified, when `a` is not (numerically) positive definite.
bool upperCholeskyOfInverse(const double *a, int64_t k, std::vector<double> &u);

} // namespace qforge::quant

#endif // QFORGE_QUANT_GPTQ_H
