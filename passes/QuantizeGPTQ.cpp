//===- QuantizeGPTQ.cpp - GPTQ weight quantization --------------*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// qf-gptq: per constant linear, quantize the weight with GPTQ
// (qforge::quant::quantizeGPTQ) against the Hessian that qf-calibrate
// attached, and rewrite it into qf ops as qf-quantize-rtn does.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/WeightRewrite.h"

#include "qforge/Quant/GPTQ.h"

#include "llvm/Support/raw_ostream.h"

namespace qforge {
#define GEN_PASS_DEF_QUANTIZEGPTQPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;
using namespace qforge;

namespace {
struct QuantizeGPTQPass
    : public qforge::impl::QuantizeGPTQPassBase<QuantizeGPTQPass> {
  using Base::Base;

  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    auto fail = [&](Operation *at, const Twine &message) {
      at->emitError("qf-gptq: ") << message;
      signalPassFailure();
    };
    auto scheme = qf::SchemeAttr::getChecked(
        [&] { return getOperation().emitError("qf-gptq: "); }, ctx,
        qf::SchemeKind::Affine, unsigned(bits), int64_t(groupSize),
        bool(symmetric));
    if (!scheme)
      return signalPassFailure();
    if (blockSize < 1 || damp <= 0)
      return fail(getOperation(), "block-size and damp must be positive");

    qforge::quant::GPTQOptions options;
    options.percDamp = damp;
    options.blockSize = blockSize;
    options.actOrder = actOrder;
    options.staticGroups = actOrder;
    qforge::quant::Scheme qs = toQuantScheme(scheme);
    OpBuilder b(ctx);
    std::vector<LinearWeight> linears = findConstantLinears(getOperation());
    if (onlyCalibrated)
      llvm::erase_if(linears, [](const LinearWeight &linear) {
        return !linear.matmul->hasAttr("qf.calib");
      });
    for (auto [index, linear] : llvm::enumerate(linears)) {
      if (progress)
        llvm::errs() << "qf-gptq: [" << index + 1 << "/" << linears.size()
                     << "] " << linear.name << " (" << linear.rows << "x"
                     << linear.cols << ")\n";
      std::string error;
      FailureOr<std::vector<double>> gram = calibrationGram(linear, error);
      if (failed(gram))
        return fail(linear.matmul, error);
      std::vector<float> weight = linear.load();
      qforge::quant::GPTQResult result = qforge::quant::quantizeGPTQ(
          weight.data(), linear.rows, linear.cols, gram->data(), qs, options);
      if (!result.ok)
        return fail(linear.matmul,
                    "layer '" + linear.name + "': " + result.message);
      if (!result.message.empty())
        linear.matmul.emitWarning("qf-gptq: layer '")
            << linear.name << "': " << result.message;
      rewriteAffine(b, linear, scheme, result.quantized, weight);
    }
  }
};
} // namespace
