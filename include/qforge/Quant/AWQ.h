//===- AWQ.h - Activation-aware weight quantization -------------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// AWQ (Lin et al., 2023) protects the weights of input channels with large
// activations by scaling them up before round-to-nearest quantization:
//
//   Y = X W^T = (X diag(s)^-1) (W diag(s))^T,
//
// and W diag(s) is quantized. The caller folds s: the operation producing X
// (e.g. a norm's gain, or the previous linear's output rows) is divided by s,
// and the quantized matrix stands for W diag(s). Scaled weights are
// reconstructed as W^ = dequant(Q(W diag(s))) diag(s)^-1.
//
// Scale search. With s_x = mean |x| per input channel (ActivationStats::
// meanAbs), for alpha in {0, 1/G, ..., (G-1)/G} (G = gridSize):
//   s_k = max(s_x,k^alpha, 1e-4), normalized s <- s / sqrt(max(s) min(s)),
//   loss(alpha) = sum over the members m of ||X W_m^T - X W^_m^T||^2
//                 / (rows * sum_m N_m),
// and the alpha with the least loss is kept (alpha = 0, s = 1, is plain RTN
// and wins ties). Several linears reading the same input (q/k/v, gate/up)
// share one s, so they are searched together as members of one set.
// The output error is computed exactly from the Gram matrix of the inputs,
// ||X D^T||^2 = sum_n d_n (sum_t x_t x_t^T) d_n^T, so the statistics of all
// calibration tokens are used, at a cost independent of their number.
//
// Clipping (optional, per member): each group of W_m diag(s) then gets the
// clipping search of Clip.h weighted by the Gram matrix of the scaled inputs,
// diag(s)^-1 G diag(s)^-1: a group's error is the output error it alone
// causes on the calibration inputs (cross-group terms ignored). A member
// keeps its clipped matrix only if its whole output error is lower.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_QUANT_AWQ_H
#define QFORGE_QUANT_AWQ_H

#include "qforge/Quant/Clip.h"
#include "qforge/Quant/Hessian.h"
#include "qforge/Quant/RTN.h"

#include <vector>

namespace qforge::quant {

/// One linear of a set sharing an input: `rows` x K weights, row-major.
struct AWQMember {
  const float *weights = nullptr;
  int64_t rows = 0;
  /// Whether this member gets the clipping search (callers commonly leave it
  /// out for the query and key projections, whose errors attention scores
  /// amplify).
  bool clip = true;
};

struct AWQOptions {
  /// Number of alpha values, alpha = i / gridSize for i < gridSize (>= 1).
  int gridSize = 20;
  /// Run the clipping search on the members that ask for it.
  bool clip = true;
  ClipOptions clipOptions{0.5f, 0.025f};
};

struct AWQResult {
  /// The chosen exponent and the per-input-channel scales s (K values).
  float alpha = 0.0f;
  std::vector<float> scales;
  /// Per member: W_m diag(s), quantized.
  std::vector<AffineQuantized> quantized;
  /// loss(alpha) for every alpha of the grid, in grid order.
  std::vector<double> lossByAlpha;
  /// loss(0): plain RTN; the loss at the chosen alpha before clipping; and
  /// the loss of `quantized` (after clipping).
  double rtnLoss = 0.0;
  double scaledLoss = 0.0;
  double finalLoss = 0.0;
};

/// The AWQ scales for exponent `alpha` from mean |x| per channel.
std::vector<float> awqScales(const std::vector<float> &meanAbs, float alpha);

/// W^ of member weights `w` (rows x K) quantized as `q` = Q(W diag(s)).
std::vector<float> awqReconstruct(const AffineQuantized &q,
                                  const std::vector<float> &scales);

/// The final quantization of one linear whose weights were scaled by AWQ:
/// `scaled` (rows x k, row-major) is its float weight as it will be
/// multiplied, W diag(s) possibly with rows scaled by a later fold, and
/// `scaledGram` the k x k Gram matrix of its scaled inputs,
/// diag(s)^-1 G diag(s)^-1. Returns RTN of `scaled`, or with `clip` the
/// clipped form (Clip.h, weighted by `scaledGram`) when that has the lower
/// output error on `scaledGram`. searchAWQ uses it for its clipping step.
AffineQuantized quantizeScaled(const float *scaled, int64_t rows, int64_t k,
                               const Scheme &scheme, const double *scaledGram,
                               bool clip, const ClipOptions &clipOptions);

/// Searches alpha (and clipping) for `members`, all with K =
/// stats.channels() input channels, on the calibration statistics `stats`
/// (at least one row). The scheme must be valid.
AWQResult searchAWQ(const std::vector<AWQMember> &members,
                    const ActivationStats &stats, const Scheme &scheme,
                    const AWQOptions &options = {});

/// sum_n d_n G d_n^T with d = ref - approx (rows x k, row-major) and `gram`
/// the k x k matrix G: ||X ref^T - X approx^T||^2 when G = X^T X.
double outputSquaredError(const float *ref, const float *approx, int64_t rows,
                          int64_t k, const double *gram);

} // namespace qforge::quant

#endif // QFORGE_QUANT_AWQ_H
