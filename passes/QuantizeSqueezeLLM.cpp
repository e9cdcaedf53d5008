//===- QuantizeSqueezeLLM.cpp - Sensitivity-weighted k-means ----*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// qf-squeezellm: per constant linear, quantize the weight with one weighted
// k-means table per output row (qforge::quant::quantizeCodebook), the
// sample weights taken from the weight's Fisher information or from the
// diagonal of qf-calibrate's XᵀX, and rewrite it into qf ops.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/WeightRewrite.h"

#include "llvm/Support/raw_ostream.h"

namespace qforge {
#define GEN_PASS_DEF_QUANTIZESQUEEZELLMPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;
using namespace qforge;
namespace q = qforge::quant;

namespace {
struct QuantizeSqueezeLLMPass
    : public qforge::impl::QuantizeSqueezeLLMPassBase<QuantizeSqueezeLLMPass> {
  using Base::Base;

  void runOnOperation() override {
    auto fail = [&](Operation *at, const Twine &message) {
      at->emitError("qf-squeezellm: ") << message;
      signalPassFailure();
    };
    if (!qf::SchemeAttr::getChecked(
            [&] { return getOperation().emitError("qf-squeezellm: "); },
            &getContext(), qf::SchemeKind::Codebook, unsigned(bits),
            qf::SchemeAttr::kPerChannel, false))
      return signalPassFailure();
    if (sensitivity != "fisher" && sensitivity != "xtx" &&
        sensitivity != "none")
      return fail(getOperation(), "unknown sensitivity '" + sensitivity +
                                      "' (fisher, xtx or none)");
    q::KMeansOptions options;
    if (solver == "lloyd")
      options.solver = q::KMeansSolver::Lloyd;
    else if (solver != "exact")
      return fail(getOperation(),
                  "unknown solver '" + solver + "' (exact or lloyd)");
    options.seed = seed;
    if (table != "f32" && table != "f16")
      return fail(getOperation(),
                  "unknown table type '" + table + "' (f32 or f16)");

    OpBuilder b(&getContext());
    std::vector<LinearWeight> linears = findConstantLinears(getOperation());
    for (auto [index, linear] : llvm::enumerate(linears)) {
      std::string error;
      std::vector<float> perWeight, perColumn;
      if (sensitivity == "fisher") {
        FailureOr<std::vector<float>> f = fisherInformation(linear, error);
        if (failed(f))
          return fail(linear.matmul, error);
        perWeight = std::move(*f);
      } else if (sensitivity == "xtx") {
        FailureOr<std::vector<float>> d = calibrationDiagonal(linear, error);
        if (failed(d))
          return fail(linear.matmul, error);
        perColumn = std::move(*d);
      }
      q::Sensitivity s;
      s.perWeight = perWeight.empty() ? nullptr : perWeight.data();
      s.perColumn = perColumn.empty() ? nullptr : perColumn.data();
      std::vector<uint8_t> excluded;
      if (linear.outliers)
        excluded = linear.outliers->positions();
      std::vector<float> weight = linear.load();
      // One line per layer; on a terminal it counts the rows as they go.
      bool live = llvm::errs().is_displayed();
      auto report = [&](int64_t rowsDone) {
        if (!live && rowsDone != linear.rows)
          return;
        llvm::errs() << (live ? "\r" : "") << "qf-squeezellm: [" << index + 1
                     << "/" << linears.size() << "] " << linear.name << " ("
                     << linear.rows << "x" << linear.cols << ") rows "
                     << rowsDone << "/" << linear.rows;
        if (rowsDone == linear.rows)
          llvm::errs() << "\n";
      };
      q::CodebookQuantized quantized = q::quantizeCodebook(
          weight.data(), linear.rows, linear.cols, bits, s,
          excluded.empty() ? nullptr : excluded.data(), options,
          progress ? std::function<void(int64_t)>(report) : nullptr);
      if (table == "f16")
        q::roundTableToHalf(quantized);
      rewriteCodebook(b, linear, quantized, weight);
    }
  }
};
} // namespace
