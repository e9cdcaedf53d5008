//===- QuantizeRTN.cpp - Round-to-nearest weight quantization ---*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/WeightRewrite.h"

#include "qforge/Quant/Clip.h"
#include "qforge/Quant/RTN.h"

namespace qforge {
#define GEN_PASS_DEF_QUANTIZERTNPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;
using namespace qforge;

namespace {
struct QuantizeRTNPass
    : public qforge::impl::QuantizeRTNPassBase<QuantizeRTNPass> {
  using Base::Base;

  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    int64_t group = groupSize;
    auto scheme = qf::SchemeAttr::getChecked(
        [&] { return getOperation().emitError("qf-quantize-rtn: "); }, ctx,
        qf::SchemeKind::Affine, unsigned(bits), group, bool(symmetric));
    if (!scheme)
      return signalPassFailure();

    OpBuilder b(ctx);
    qforge::quant::Scheme qs = toQuantScheme(scheme);
    for (LinearWeight &linear : findConstantLinears(getOperation())) {
      std::vector<float> weight = linear.load();
      rewriteAffine(b, linear, scheme,
                    clip ? qforge::quant::quantizeRTNClipped(
                               weight.data(), linear.rows, linear.cols, qs)
                         : qforge::quant::quantizeRTN(
                               weight.data(), linear.rows, linear.cols, qs),
                    weight);
    }
  }
};
} // namespace
