//===- QuantizeAWQ.cpp - Activation-aware weight quantization ---*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// qf-awq: per group of linears sharing an input, search the AWQ scales
// (qforge::quant::searchAWQ) on the statistics of qf-calibrate, divide the
// input by them (folded into a constant multiplication that makes it, or an
// explicit tosa.mul), and quantize W·diag(s) into qf ops.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"
#include "passes/WeightRewrite.h"

#include "qforge/Quant/AWQ.h"

#include "mlir/IR/Matchers.h"
#include "llvm/ADT/MapVector.h"
#include "llvm/Support/raw_ostream.h"

namespace qforge {
#define GEN_PASS_DEF_QUANTIZEAWQPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;
using namespace qforge;
namespace q = qforge::quant;

namespace {

/// The shape [1, ..., 1, K] of a per-channel factor for a value of `rank`.
SmallVector<int64_t> channelShape(int64_t rank, int64_t k) {
  SmallVector<int64_t> shape(rank, 1);
  shape.back() = k;
  return shape;
}

/// If `x` is a tosa.mul by a constant per-channel vector and only `users`
/// read `x`, replaces that vector v by v / s and returns true.
bool foldIntoProducer(OpBuilder &b, Value x, ArrayRef<float> s,
                      const llvm::SmallPtrSetImpl<Operation *> &users,
                      StringRef name) {
  auto mul = x.getDefiningOp<tosa::MulOp>();
  if (!mul || llvm::any_of(x.getUsers(),
                           [&](Operation *u) { return !users.contains(u); }))
    return false;
  int64_t k = static_cast<int64_t>(s.size());
  for (unsigned i = 0; i < 2; ++i) {
    Value operand = mul->getOperand(i);
    auto type = dyn_cast<RankedTensorType>(operand.getType());
    // The vector, possibly behind a tosa.reshape (to the operand's rank).
    Value source = operand;
    if (auto reshape = operand.getDefiningOp<tosa::ReshapeOp>())
      source = reshape.getInput1();
    Attribute values;
    if (!type || !type.hasStaticShape() || type.getNumElements() != k ||
        type.getShape().back() != k || !type.getElementType().isF32() ||
        !matchPattern(source, m_Constant(&values)))
      continue;
    std::vector<float> scaled = readFloatsOf(values);
    if (scaled.size() != s.size())
      continue;
    for (size_t j = 0; j < scaled.size(); ++j)
      scaled[j] /= s[j];
    b.setInsertionPoint(mul);
    Value c = createResourceConst<float>(b, mul.getLoc(), name, scaled,
                                         type.getShape(), b.getF32Type());
    mul->setOperand(i, c);
    return true;
  }
  return false;
}

/// x / s as an explicit tosa.mul by 1/s, read by `users` instead of `x`.
void scaleExplicitly(OpBuilder &b, Value x, ArrayRef<float> s,
                     ArrayRef<Operation *> users, StringRef name) {
  auto type = cast<RankedTensorType>(x.getType());
  b.setInsertionPointAfterValue(x);
  Location loc = x.getLoc();
  std::vector<float> inverse;
  for (float v : s)
    inverse.push_back(1.0f / v);
  Value c = createResourceConst<float>(b, loc, name, inverse,
                                       channelShape(type.getRank(), s.size()),
                                       b.getF32Type());
  auto shiftType = RankedTensorType::get({1}, b.getI8Type());
  Value shift = tosa::ConstOp::create(
      b, loc, shiftType, DenseElementsAttr::get(shiftType, int8_t(0)));
  Value scaled = tosa::MulOp::create(b, loc, type, x, c, shift);
  for (Operation *user : users)
    user->replaceUsesOfWith(x, scaled);
}

/// The float weight W·diag(s) as the [1, K, N] operand of `linear.matmul`.
void setFloatWeight(OpBuilder &b, LinearWeight &linear, ArrayRef<float> w) {
  int64_t k = linear.cols, n = linear.rows;
  std::vector<float> kn(w.size());
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c)
      kn[c * n + r] = w[r * k + c];
  b.setInsertionPoint(linear.matmul);
  Value c = createResourceConst<float>(b, linear.matmul.getLoc(),
                                       linear.name + ".awq", kn, {1, k, n},
                                       b.getF32Type());
  linear.matmul->setOperand(1, c);
}

struct QuantizeAWQPass
    : public qforge::impl::QuantizeAWQPassBase<QuantizeAWQPass> {
  using Base::Base;

  void runOnOperation() override {
    MLIRContext *ctx = &getContext();
    auto scheme = qf::SchemeAttr::getChecked(
        [&] { return getOperation().emitError("qf-awq: "); }, ctx,
        qf::SchemeKind::Affine, unsigned(bits), int64_t(groupSize),
        bool(symmetric));
    if (!scheme)
      return signalPassFailure();
    if (grid < 1) {
      getOperation().emitError("qf-awq: grid must be at least 1");
      return signalPassFailure();
    }
    q::Scheme qs = toQuantScheme(scheme);
    q::AWQOptions options;
    options.gridSize = static_cast<int>(grid);
    options.clip = clip;

    std::vector<LinearWeight> linears = findConstantLinears(getOperation());
    llvm::MapVector<Value, SmallVector<LinearWeight *>> groups;
    for (LinearWeight &linear : linears)
      groups[linear.matmul.getA()].push_back(&linear);

    OpBuilder b(ctx);
    size_t groupIndex = 0;
    for (auto &[x, members] : groups) {
      LinearWeight &first = *members.front();
      if (progress) {
        llvm::errs() << "qf-awq: [" << ++groupIndex << "/" << groups.size()
                     << "]";
        for (LinearWeight *m : members)
          llvm::errs() << " " << m->name;
        llvm::errs() << "\n";
      }
      std::string error;
      FailureOr<std::vector<double>> gram = calibrationGram(first, error);
      if (failed(gram)) {
        first.matmul->emitError("qf-awq: ") << error;
        return signalPassFailure();
      }
      q::ActivationStats stats = q::ActivationStats::fromSummary(
          calibrationRows(first), *gram, calibrationMeanAbs(first));

      std::vector<std::vector<float>> weights;
      std::vector<q::AWQMember> awqMembers;
      for (LinearWeight *m : members) {
        weights.push_back(m->load());
        awqMembers.push_back({weights.back().data(), m->rows, true});
      }
      q::AWQResult result = q::searchAWQ(awqMembers, stats, qs, options);
      const std::vector<float> &s = result.scales;
      int64_t k = first.cols;

      // The group's input becomes X / s.
      llvm::SmallPtrSet<Operation *, 4> users;
      SmallVector<Operation *> userList;
      for (LinearWeight *m : members) {
        users.insert(m->matmul);
        userList.push_back(m->matmul);
      }
      if (!foldIntoProducer(b, x, s, users, first.name + ".awq_input"))
        scaleExplicitly(b, x, s, userList, first.name + ".awq_input");

      // Statistics of X / s: XᵀX / (s sᵀ), mean |x| / s.
      std::vector<float> xtx(k * k), meanAbs = stats.meanAbs();
      for (int64_t i = 0; i < k; ++i) {
        meanAbs[i] /= s[i];
        for (int64_t j = 0; j < k; ++j)
          xtx[i * k + j] = (*gram)[i * k + j] / (double(s[i]) * s[j]);
      }
      for (auto [i, m] : llvm::enumerate(members)) {
        std::vector<float> &w = weights[i];
        for (int64_t r = 0; r < m->rows; ++r)
          for (int64_t c = 0; c < k; ++c)
            w[r * k + c] *= s[c];
        m->matmul->setAttr(
            "qf.calib",
            makeCalibAttr(b, m->name + ".xtx", stats.rows(), xtx, meanAbs));
        m->matmul->setAttr("qf.awq_alpha", b.getF64FloatAttr(result.alpha));
        if (quantize)
          rewriteAffine(b, *m, scheme, result.quantized[i], w);
        else
          setFloatWeight(b, *m, w);
      }
    }
  }
};
} // namespace
