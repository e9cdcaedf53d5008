//===- QuantizeAWQ.cpp - Activation-aware weight quantization ---*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// qf-awq, in two phases as the AWQ reference does.
//
// Phase 1, per group of linears sharing an input X, in program order: search
// the AWQ scales s (qforge::quant::searchAWQ) on the statistics of
// qf-calibrate and make the group read X / s, folded, by preference,
//  - into the constant multiplication that makes X (a norm's gain);
//  - into the output channels of the previous linear that X is made from
//    through ops commuting with a per-channel scaling (ChannelTrace.h: v's
//    rows for o through attention, up's rows for down through
//    silu(gate) * up), with a constant bias added on the way (the bias is
//    replaced now, the weight rows are divided in phase 2);
//  - else into an explicit tosa.mul by 1/s before the group's matmuls.
// Each fold changes only the group's own input, so every group is searched
// on the statistics of the float model; the group's qf.calib (one dictionary
// shared by its members) is then rescaled to X / s. The matmuls record how
// s was applied in `qf.awq_fold` ("gain", "explicit" or the previous
// linear's name).
//
// Phase 2: load each linear's weight once, apply its group's scales to its
// columns and the folded scales of a later group to its rows, and quantize
// it (with the clipping search on the rescaled statistics): a previous
// linear is thus quantized with both applied. With quantize=false the scaled
// float weights are stored instead, and the model computes the same
// function (a check of the folding).
//
// A weight read by several linears (tied or deduplicated) is in no group:
// its uses read different inputs, and one set of scales for all of them
// would need every input rescaled alike. It is quantized unscaled, with the
// clipping search on the statistics of all its inputs.
//
//===----------------------------------------------------------------------===//

#include "passes/ChannelTrace.h"
#include "passes/Passes.h"
#include "passes/WeightRewrite.h"

#include "qforge/Quant/AWQ.h"

#include "llvm/ADT/MapVector.h"
#include "llvm/Support/Format.h"
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
    if (!type || !type.hasStaticShape() || type.getNumElements() != k ||
        type.getShape().back() != k || !type.getElementType().isF32())
      continue;
    // The vector, possibly behind a tosa.reshape (to the operand's rank).
    std::optional<std::vector<float>> scaled = constantFloats(operand);
    if (!scaled)
      continue;
    for (size_t j = 0; j < scaled->size(); ++j)
      (*scaled)[j] /= s[j];
    b.setInsertionPoint(mul);
    Value c = createResourceConst<float>(b, mul.getLoc(), name, *scaled,
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

/// Makes `w` (N x K) the float weight of `linear`, as the [1, K, N] operand
/// of its matmul, and erases the previous weight constant when dead.
void storeFloatWeight(OpBuilder &b, LinearWeight &linear, ArrayRef<float> w) {
  int64_t k = linear.cols, n = linear.rows;
  std::vector<float> kn(w.size());
  for (int64_t r = 0; r < n; ++r)
    for (int64_t c = 0; c < k; ++c)
      kn[c * n + r] = w[r * k + c];
  b.setInsertionPoint(linear.matmul);
  Value c = createResourceConst<float>(b, linear.matmul.getLoc(),
                                       linear.name + ".awq", kn, {1, k, n},
                                       b.getF32Type());
  Value old = linear.matmul.getB();
  linear.matmul.getBMutable().assign(c);
  linear.constant = c.getDefiningOp<tosa::ConstOp>().getValues();
  eraseIfDead(old);
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
    // Phase 1 only chooses alpha (clipping does not change the choice);
    // phase 2 clips the final weights.
    options.clip = false;

    std::vector<LinearWeight> linears = findConstantLinears(getOperation());
    llvm::MapVector<Value, SmallVector<LinearWeight *>> groups;
    llvm::DenseMap<Operation *, LinearWeight *> linearOf;
    // A weight read by several linears keeps its scale (1): one s per use
    // would need as many copies of it.
    for (LinearWeight &linear : linears) {
      if (!linear.sharers.empty())
        continue;
      groups[linear.matmul.getA()].push_back(&linear);
      linearOf[linear.matmul] = &linear;
    }
    auto isLinear = [&](tosa::MatMulOp op) { return linearOf.count(op) > 0; };
    // Per linear (by index): its group's scales s, which multiply its
    // columns, and the scales of a later group folded into its rows, which
    // divide them (empty: none).
    std::vector<std::vector<float>> columnScale(linears.size()),
        rowDivisor(linears.size());
    auto indexOf = [&](const LinearWeight &l) { return &l - linears.data(); };

    // Phase 1: search the scales of each group and make its input X / s.
    OpBuilder b(ctx);
    size_t groupIndex = 0;
    for (auto &[x, members] : groups) {
      LinearWeight &first = *members.front();
      if (progress) {
        llvm::errs() << "qf-awq: [" << ++groupIndex << "/" << groups.size()
                     << "]";
        for (LinearWeight *m : members)
          llvm::errs() << " " << m->name;
      }
      std::string error;
      FailureOr<std::vector<double>> gram = calibrationGram(first, error);
      if (failed(gram)) {
        if (progress)
          llvm::errs() << "\n";
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
      std::string fold;
      if (foldIntoProducer(b, x, s, users, first.name + ".awq_input")) {
        fold = "gain";
      } else if (FailureOr<ChannelTrace> trace =
                     traceChannels(x, userList, isLinear);
                 succeeded(trace)) {
        // Divide the previous linear's output channels (phase 2) and the
        // biases on the way.
        LinearWeight &producer = *linearOf.lookup(trace->producer);
        std::vector<float> &divisor = rowDivisor[indexOf(producer)];
        divisor.resize(k);
        for (int64_t c = 0; c < k; ++c)
          divisor[trace->producerChannel[c]] = s[c];
        scaleChainBiases(b, *trace, s, first.name + ".awq_input");
        fold = producer.name;
      } else {
        scaleExplicitly(b, x, s, userList, first.name + ".awq_input");
        fold = "explicit";
      }
      if (progress)
        llvm::errs() << llvm::format(" (alpha %.2f, ", result.alpha) << fold
                     << ")\n";

      // Statistics of X / s: XᵀX / (s sᵀ), mean |x| / s; one dictionary
      // for the whole group.
      std::vector<float> xtx(k * k), meanAbs = stats.meanAbs();
      for (int64_t i = 0; i < k; ++i) {
        meanAbs[i] /= s[i];
        for (int64_t j = 0; j < k; ++j)
          xtx[i * k + j] = (*gram)[i * k + j] / (double(s[i]) * s[j]);
      }
      DictionaryAttr calib =
          makeCalibAttr(b, first.name + ".xtx", stats.rows(), xtx, meanAbs);
      for (LinearWeight *m : members) {
        m->matmul->setAttr("qf.calib", calib);
        m->matmul->setAttr("qf.awq_alpha", b.getF64FloatAttr(result.alpha));
        m->matmul->setAttr("qf.awq_fold", b.getStringAttr(fold));
        columnScale[indexOf(*m)] = s;
      }
    }

    // Phase 2: each linear's final weight, diag(1/r)·W·diag(s) with r the
    // scales folded into its rows, quantized on the statistics of its
    // scaled input (or stored as float with quantize=false).
    if (progress)
      llvm::errs() << "qf-awq: quantizing " << linears.size() << " layers\n";
    for (LinearWeight &linear : linears) {
      LinearWeight *m = &linear;
      std::vector<float> w = m->load();
      const std::vector<float> &s = columnScale[indexOf(*m)];
      const std::vector<float> &r = rowDivisor[indexOf(*m)];
      for (int64_t i = 0; i < m->rows; ++i)
        for (int64_t j = 0; j < m->cols; ++j) {
          if (!s.empty())
            w[i * m->cols + j] *= s[j];
          if (!r.empty())
            w[i * m->cols + j] /= r[i];
        }
      // Outliers split off before get the same scaling.
      if (m->outliers) {
        q::SparseRows &o = *m->outliers;
        for (int64_t i = 0; i < o.rows; ++i)
          for (int32_t j = o.rowPtr[i]; j < o.rowPtr[i + 1]; ++j) {
            if (!s.empty())
              o.values[j] *= s[o.colIdx[j]];
            if (!r.empty())
              o.values[j] /= r[i];
          }
      }
      if (!quantize) {
        if (m->outliers)
          q::addSparse(*m->outliers, w.data());
        if (m->sharers.empty())
          storeFloatWeight(b, *m, w);
        continue;
      }
      std::string error;
      FailureOr<std::vector<double>> gram = calibrationGram(*m, error);
      if (failed(gram)) {
        m->matmul->emitError("qf-awq: ") << error;
        return signalPassFailure();
      }
      q::AffineQuantized quantized =
          q::quantizeScaled(w.data(), m->rows, m->cols, qs, gram->data(), clip,
                            options.clipOptions);
      rewriteAffine(b, *m, scheme, quantized, w);
    }
  }
};
} // namespace
