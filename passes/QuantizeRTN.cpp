//===- QuantizeRTN.cpp - Round-to-nearest weight quantization ---*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/WeightRewrite.h"

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
    for (LinearWeight &linear : findConstantLinears(getOperation())) {
      qforge::quant::Scheme qs = toQuantScheme(scheme);
      std::vector<float> weight = linear.load();
      qforge::quant::AffineQuantized q = qforge::quant::quantizeRTN(
          weight.data(), linear.rows, linear.cols, qs);
      b.setInsertionPoint(linear.matmul);
      Location loc = linear.matmul.getLoc();
      int64_t scaleRows = scheme.scaleRows(linear.rows);
      int64_t groups = scheme.groupsPerRow(linear.cols);
      QuantizedWeight w;
      w.scheme = scheme;
      w.codes = createResourceConst<uint32_t>(
          b, loc, linear.name + ".codes", q.codes,
          {linear.rows, scheme.wordsPerRow(linear.cols)}, b.getI32Type());
      w.scales =
          createResourceConst<float>(b, loc, linear.name + ".scales", q.scales,
                                     {scaleRows, groups}, b.getF32Type());
      if (scheme.hasZeroPoints())
        w.zeroPoints = createResourceConst<uint8_t>(
            b, loc, linear.name + ".zero_points", q.zeroPoints,
            {scaleRows, groups}, b.getI8Type());
      qf::DequantizeOp dq = replaceWithDequantized(b, linear, w);
      std::vector<float> decoded = qforge::quant::dequantize(q);
      dq->setAttr("qf.weight_error",
                  b.getF64FloatAttr(qforge::quant::relativeError(
                      weight.data(), decoded.data(), decoded.size())));
    }
  }
};
} // namespace
