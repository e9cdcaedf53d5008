//===- SplitOutliers.cpp - Dense-and-sparse split of weights ----*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// qf-split-outliers: per constant linear weight, mark the most sensitive
// weights and the weights outside the fences of qforge::quant (Outliers.h),
// with one fence range for the whole function, and replace the weight
// constant by the dense remainder carrying the marked values as
// `qf.outliers`. Two sweeps over the weights: one summarises each matrix's
// distribution for the fence search, one extracts.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/WeightRewrite.h"

#include "llvm/Support/raw_ostream.h"

namespace qforge {
#define GEN_PASS_DEF_SPLITOUTLIERSPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;
using namespace qforge;
namespace q = qforge::quant;

namespace {
struct SplitOutliersPass
    : public qforge::impl::SplitOutliersPassBase<SplitOutliersPass> {
  using Base::Base;

  /// Marks the sensitive weights of `linear` (weight `w`, N x K) in `mask`.
  LogicalResult markSensitive(const LinearWeight &linear,
                              const std::vector<float> &w,
                              std::vector<uint8_t> &mask) {
    if (sensitive <= 0)
      return success();
    std::string error;
    std::vector<float> score;
    if (sensitivity == "fisher") {
      FailureOr<std::vector<float>> fisher = fisherInformation(linear, error);
      if (failed(fisher))
        return linear.matmul->emitError("qf-split-outliers: ") << error;
      score = std::move(*fisher);
    } else {
      // diag(XᵀX) has no row factor: rank by the output energy the weight
      // carries, diag(XᵀX)_k · w², instead (docs/decisions.md).
      FailureOr<std::vector<float>> diag = calibrationDiagonal(linear, error);
      if (failed(diag))
        return linear.matmul->emitError("qf-split-outliers: ") << error;
      score.resize(w.size());
      for (int64_t n = 0; n < linear.rows; ++n)
        for (int64_t k = 0; k < linear.cols; ++k) {
          float v = w[size_t(n * linear.cols + k)];
          score[size_t(n * linear.cols + k)] = (*diag)[size_t(k)] * v * v;
        }
    }
    q::markMostSensitive(score.data(), int64_t(score.size()), sensitive / 100,
                         mask.data());
    return success();
  }

  void runOnOperation() override {
    auto fail = [&](Operation *at, const Twine &message) {
      at->emitError("qf-split-outliers: ") << message;
      signalPassFailure();
    };
    if (!(outliers >= 0 && outliers < 100 && sensitive >= 0 && sensitive < 100))
      return fail(getOperation(), "outliers and sensitive are percentages in "
                                  "[0, 100)");
    if (sensitivity != "fisher" && sensitivity != "xtx" &&
        sensitivity != "none")
      return fail(getOperation(), "unknown sensitivity '" + sensitivity +
                                      "' (fisher, xtx or none)");
    if (sensitive > 0 && sensitivity == "none")
      return fail(getOperation(),
                  "sensitive values need a sensitivity (fisher or xtx)");
    std::vector<LinearWeight> linears = findConstantLinears(getOperation());
    for (const LinearWeight &linear : linears)
      if (linear.outliers)
        return fail(linear.matmul, "layer '" + linear.name +
                                       "' already has its outliers split");

    // Sweep 1: the distribution of each matrix's unmarked weights.
    std::vector<q::FenceSummary> summaries;
    int64_t total = 0;
    for (const LinearWeight &linear : linears) {
      std::vector<float> w = linear.load();
      std::vector<uint8_t> mask(w.size(), 0);
      if (failed(markSensitive(linear, w, mask)))
        return signalPassFailure();
      summaries.push_back(
          q::summarizeWeights(w.data(), int64_t(w.size()), mask.data()));
      total += int64_t(w.size());
    }
    double range =
        outliers > 0 ? q::solveFenceRange(summaries, total, outliers / 100) : 0;

    // Sweep 2: extract, and replace each constant by its dense remainder.
    OpBuilder b(&getContext());
    for (auto [linear, summary] : llvm::zip(linears, summaries)) {
      std::vector<float> w = linear.load();
      std::vector<uint8_t> mask(w.size(), 0);
      if (failed(markSensitive(linear, w, mask)))
        return signalPassFailure();
      if (outliers > 0)
        q::markOutsideFence(w.data(), int64_t(w.size()),
                            summary.threshold(range), mask.data());
      q::SparseRows sparse =
          q::extractMarked(w.data(), linear.rows, linear.cols, mask.data());
      if (sparse.nnz() == 0)
        continue;
      // Back to the constant's K x N layout.
      std::vector<float> kn(w.size());
      for (int64_t n = 0; n < linear.rows; ++n)
        for (int64_t k = 0; k < linear.cols; ++k)
          kn[size_t(k * linear.rows + n)] = w[size_t(n * linear.cols + k)];
      Operation *old = linear.constOp;
      b.setInsertionPoint(old);
      auto type = cast<ShapedType>(old->getResult(0).getType());
      Value dense = createResourceConst<float>(
          b, old->getLoc(), linear.name, kn, type.getShape(), b.getF32Type());
      Operation *op = dense.getDefiningOp();
      op->setAttr("qf.outliers",
                  makeOutliersAttr(b, linear.name + ".outliers", sparse));
      if (Attribute fisher = old->getAttr("qf.fisher"))
        op->setAttr("qf.fisher", fisher);
      old->getResult(0).replaceAllUsesWith(dense);
      old->erase();
    }
  }
};
} // namespace
