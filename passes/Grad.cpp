//===- Grad.cpp - qf-grad: reverse-mode differentiation of graph IR -------===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// Source-to-source reverse mode at the tensor level. The forward function is
// cloned; activity analysis marks the values that depend on a linear weight
// and reach the loss; the loss's adjoint is seeded; then, walking the cloned
// ops backwards, each active op's adjoint rule is emitted as TOSA ops. Every
// value is kept (store-all), which for the small models qforge calibrates
// costs a few megabytes per sequence.
//
//===----------------------------------------------------------------------===//

#include "passes/Grad.h"
#include "passes/Calibrate.h"
#include "passes/Passes.h"
#include "passes/WeightRewrite.h"

#include "mlir/Dialect/Tosa/Utils/ConversionUtils.h"
#include "mlir/IR/SymbolTable.h"

namespace qforge {
#define GEN_PASS_DEF_GRADPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;
using namespace qforge;

namespace {

/// Emits adjoint rules; `adjoint` maps a forward value to d loss / d value.
class Differentiator {
public:
  Differentiator(OpBuilder &b, Location loc) : b(b), loc(loc) {}

  static RankedTensorType typeOf(Value v) {
    return cast<RankedTensorType>(v.getType());
  }

  RankedTensorType f32Type(ArrayRef<int64_t> shape) {
    return RankedTensorType::get(shape, b.getF32Type());
  }

  Value shapeConst(ArrayRef<int64_t> dims) {
    ImplicitLocOpBuilder ib(loc, b);
    return tosa::getTosaConstShape(ib, dims);
  }

  Value splat(ArrayRef<int64_t> shape, float v) {
    auto t = f32Type(shape);
    return tosa::ConstOp::create(
        b, loc, t, DenseElementsAttr::get(t, b.getF32FloatAttr(v)));
  }

  /// A constant of rank `rank` and size 1 on every axis.
  Value scalar(float v, int64_t rank) {
    return splat(SmallVector<int64_t>(rank, 1), v);
  }

  Value shift() {
    auto t = RankedTensorType::get({1}, b.getI8Type());
    return tosa::ConstOp::create(
        b, loc, t, DenseElementsAttr::get(t, b.getI8IntegerAttr(0)));
  }

  /// The result type of a broadcasting elementwise op of `a` and `c`.
  RankedTensorType broadcastType(Value a, Value c, Type element = {}) {
    auto ta = typeOf(a), tc = typeOf(c);
    SmallVector<int64_t> dims;
    for (int64_t i = 0; i < ta.getRank(); ++i)
      dims.push_back(std::max(ta.getDimSize(i), tc.getDimSize(i)));
    return RankedTensorType::get(dims, element ? element : b.getF32Type());
  }

  Value mul(Value a, Value c) {
    return tosa::MulOp::create(b, loc, broadcastType(a, c), a, c, shift());
  }
  Value add(Value a, Value c) {
    return tosa::AddOp::create(b, loc, broadcastType(a, c), a, c);
  }
  Value sub(Value a, Value c) {
    return tosa::SubOp::create(b, loc, broadcastType(a, c), a, c);
  }
  Value neg(Value a) {
    return tosa::NegateOp::create(b, loc, typeOf(a), a, scalar(0, 1),
                                  scalar(0, 1));
  }
  Value reduceSum(Value a, int64_t axis) {
    SmallVector<int64_t> dims(typeOf(a).getShape());
    dims[axis] = 1;
    return tosa::ReduceSumOp::create(b, loc, f32Type(dims), a,
                                     b.getI32IntegerAttr(int32_t(axis)));
  }

  /// Sums `g` over the axes where `target` has size 1 and `g` has not: the
  /// adjoint of an implicit broadcast.
  Value unbroadcast(Value g, RankedTensorType target) {
    for (int64_t i = 0; i < target.getRank(); ++i)
      if (target.getDimSize(i) == 1 && typeOf(g).getDimSize(i) != 1)
        g = reduceSum(g, i);
    return g;
  }

  /// `g` (size 1 on the axes where `target` is larger) broadcast to `target`.
  Value broadcastTo(Value g, RankedTensorType target) {
    if (typeOf(g).getShape() == target.getShape())
      return g;
    return add(splat(target.getShape(), 0.0f), g);
  }

  Value transpose(Value a, ArrayRef<int32_t> perms) {
    auto ta = typeOf(a);
    SmallVector<int64_t> dims;
    for (int32_t p : perms)
      dims.push_back(ta.getDimSize(p));
    return tosa::TransposeOp::create(
        b, loc, RankedTensorType::get(dims, ta.getElementType()), a,
        b.getDenseI32ArrayAttr(perms));
  }

  Value matmul(Value a, Value c) {
    auto ta = typeOf(a), tc = typeOf(c);
    Value zp = scalar(0, 1);
    return tosa::MatMulOp::create(
        b, loc, f32Type({ta.getDimSize(0), ta.getDimSize(1), tc.getDimSize(2)}),
        a, c, zp, zp);
  }

  Value reshape(Value a, ArrayRef<int64_t> shape) {
    return tosa::ReshapeOp::create(
        b, loc, RankedTensorType::get(shape, typeOf(a).getElementType()), a,
        shapeConst(shape));
  }

  Value select(Value pred, Value onTrue, Value onFalse) {
    return tosa::SelectOp::create(b, loc, broadcastType(onTrue, onFalse), pred,
                                  onTrue, onFalse);
  }

  /// Adds `g` to the adjoint of `v` (fan-out adjoints sum).
  void accumulate(Value v, Value g) {
    auto [it, inserted] = adjoint.try_emplace(v, g);
    if (!inserted)
      it->second = add(it->second, g);
  }

  /// Emits the adjoint rule of `op`, whose result has the adjoint `g`, into
  /// the adjoints of its active operands.
  LogicalResult backward(Operation *op, Value g,
                         const llvm::DenseSet<Value> &active) {
    auto want = [&](Value v) { return active.contains(v); };
    auto give = [&](Value v, llvm::function_ref<Value()> d) {
      if (want(v))
        accumulate(v, unbroadcast(d(), typeOf(v)));
    };
    Value y = op->getResult(0);
    int64_t rank = typeOf(y).getRank();
    if (auto m = dyn_cast<tosa::MatMulOp>(op)) {
      give(m.getA(), [&] { return matmul(g, transpose(m.getB(), {0, 2, 1})); });
      give(m.getB(), [&] { return matmul(transpose(m.getA(), {0, 2, 1}), g); });
      return success();
    }
    if (auto a = dyn_cast<tosa::AddOp>(op)) {
      give(a.getInput1(), [&] { return g; });
      give(a.getInput2(), [&] { return g; });
      return success();
    }
    if (auto s = dyn_cast<tosa::SubOp>(op)) {
      give(s.getInput1(), [&] { return g; });
      give(s.getInput2(), [&] { return neg(g); });
      return success();
    }
    if (auto m = dyn_cast<tosa::MulOp>(op)) {
      give(m.getInput1(), [&] { return mul(g, m.getInput2()); });
      give(m.getInput2(), [&] { return mul(g, m.getInput1()); });
      return success();
    }
    if (auto r = dyn_cast<tosa::ReciprocalOp>(op)) {
      give(r.getInput1(), [&] { return neg(mul(g, mul(y, y))); });
      return success();
    }
    if (auto r = dyn_cast<tosa::RsqrtOp>(op)) {
      give(r.getInput1(),
           [&] { return mul(mul(g, mul(y, mul(y, y))), scalar(-0.5f, rank)); });
      return success();
    }
    if (auto e = dyn_cast<tosa::ExpOp>(op)) {
      give(e.getInput1(), [&] { return mul(g, y); });
      return success();
    }
    if (auto l = dyn_cast<tosa::LogOp>(op)) {
      give(l.getInput1(), [&] {
        return mul(g, tosa::ReciprocalOp::create(b, loc, typeOf(l.getInput1()),
                                                 l.getInput1()));
      });
      return success();
    }
    if (auto s = dyn_cast<tosa::SigmoidOp>(op)) {
      give(s.getInput(),
           [&] { return mul(g, mul(y, sub(scalar(1.0f, rank), y))); });
      return success();
    }
    if (auto t = dyn_cast<tosa::TanhOp>(op)) {
      give(t.getInput(),
           [&] { return mul(g, sub(scalar(1.0f, rank), mul(y, y))); });
      return success();
    }
    if (auto e = dyn_cast<tosa::ErfOp>(op)) {
      // d erf(a) = 2/√π e^(−a²).
      give(e.getInput(), [&] {
        Value a = e.getInput();
        Value gauss = tosa::ExpOp::create(b, loc, typeOf(a), neg(mul(a, a)));
        return mul(g, mul(gauss, scalar(1.1283791670955126f, rank)));
      });
      return success();
    }
    if (auto p = dyn_cast<tosa::PowOp>(op)) {
      // Only a constant exponent c: d a^c = c a^(c−1).
      if (want(p.getInput2()))
        return op->emitError("qf-grad: tosa.pow with an active exponent");
      give(p.getInput1(), [&] {
        Value c = p.getInput2();
        Value lower = tosa::PowOp::create(b, loc, typeOf(y), p.getInput1(),
                                          sub(c, scalar(1.0f, rank)));
        return mul(g, mul(c, lower));
      });
      return success();
    }
    if (auto n = dyn_cast<tosa::NegateOp>(op)) {
      give(n.getInput1(), [&] { return neg(g); });
      return success();
    }
    if (auto r = dyn_cast<tosa::ReduceSumOp>(op)) {
      give(r.getInput(), [&] { return broadcastTo(g, typeOf(r.getInput())); });
      return success();
    }
    if (auto r = dyn_cast<tosa::ReduceMaxOp>(op)) {
      // The subgradient: g at every maximum. Inside a softmax the
      // contributions cancel (shift invariance) up to rounding.
      give(r.getInput(), [&] {
        Value x = r.getInput();
        auto tx = typeOf(x);
        Value at = tosa::EqualOp::create(
            b, loc, RankedTensorType::get(tx.getShape(), b.getI1Type()), x,
            broadcastTo(y, tx));
        return select(at, broadcastTo(g, tx), splat(tx.getShape(), 0.0f));
      });
      return success();
    }
    if (auto r = dyn_cast<tosa::ReshapeOp>(op)) {
      give(r.getInput1(),
           [&] { return reshape(g, typeOf(r.getInput1()).getShape()); });
      return success();
    }
    if (auto t = dyn_cast<tosa::TransposeOp>(op)) {
      give(t.getInput1(), [&] {
        ArrayRef<int32_t> perms = t.getPerms();
        SmallVector<int32_t> inverse(perms.size());
        for (auto [i, p] : llvm::enumerate(perms))
          inverse[p] = int32_t(i);
        return transpose(g, inverse);
      });
      return success();
    }
    if (auto s = dyn_cast<tosa::SliceOp>(op)) {
      SmallVector<int64_t> start;
      if (!tosa::getConstShapeValues(s.getStart().getDefiningOp(), start))
        return op->emitError("qf-grad: tosa.slice with run-time bounds");
      give(s.getInput1(), [&] {
        auto tx = typeOf(s.getInput1());
        SmallVector<int64_t> padding;
        for (int64_t i = 0; i < tx.getRank(); ++i) {
          padding.push_back(start[i]);
          padding.push_back(tx.getDimSize(i) - start[i] -
                            typeOf(g).getDimSize(i));
        }
        return tosa::PadOp::create(b, loc, f32Type(tx.getShape()), g,
                                   shapeConst(padding), scalar(0, 1));
      });
      return success();
    }
    if (auto c = dyn_cast<tosa::ConcatOp>(op)) {
      int64_t axis = c.getAxis(), offset = 0;
      for (Value in : c.getInput1()) {
        auto tin = typeOf(in);
        give(in, [&] {
          SmallVector<int64_t> start(tin.getRank(), 0);
          start[axis] = offset;
          return tosa::SliceOp::create(b, loc, f32Type(tin.getShape()), g,
                                       shapeConst(start),
                                       shapeConst(tin.getShape()));
        });
        offset += tin.getDimSize(axis);
      }
      return success();
    }
    if (auto s = dyn_cast<tosa::SelectOp>(op)) {
      // Never g times a mask: −inf · 0 would be NaN.
      Value zero = splat(typeOf(y).getShape(), 0.0f);
      give(s.getOnTrue(), [&] { return select(s.getPred(), g, zero); });
      give(s.getOnFalse(), [&] { return select(s.getPred(), zero, g); });
      return success();
    }
    if (auto c = dyn_cast<tosa::CastOp>(op)) {
      if (!typeOf(c.getInput()).getElementType().isF32() ||
          !typeOf(y).getElementType().isF32())
        return op->emitError("qf-grad: tosa.cast from or to a type other "
                             "than f32 on the path of a gradient");
      give(c.getInput(), [&] { return g; });
      return success();
    }
    return op->emitError("qf-grad: no adjoint rule for ") << op->getName();
  }

  OpBuilder &b;
  Location loc;
  llvm::DenseMap<Value, Value> adjoint;
};

/// Seeds the adjoint of `logits` [1, T, V] with the gradient of the mean
/// next-token cross-entropy against `ids` [1, T] and returns the loss,
/// shape [1, 1, 1].
Value seedCrossEntropy(Differentiator &d, Value ids, Value logits) {
  OpBuilder &b = d.b;
  Location loc = d.loc;
  auto lt = Differentiator::typeOf(logits);
  int64_t T = lt.getDimSize(1), V = lt.getDimSize(2);
  // Softmax with its log-sum-exp, in the usual shifted form.
  Value m = tosa::ReduceMaxOp::create(b, loc, d.f32Type({1, T, 1}), logits,
                                      b.getI32IntegerAttr(2));
  Value e = tosa::ExpOp::create(b, loc, lt, d.sub(logits, m));
  Value s = d.reduceSum(e, 2);
  Value p =
      d.mul(e, tosa::ReciprocalOp::create(b, loc, d.f32Type({1, T, 1}), s));
  // Targets: the tokens shifted left by one; the last position gets -1,
  // which matches no vocabulary entry.
  auto i32 = b.getI32Type();
  Value tokens = ids;
  if (!Differentiator::typeOf(ids).getElementType().isInteger(32))
    tokens =
        tosa::CastOp::create(b, loc, RankedTensorType::get({1, T}, i32), ids);
  Value next = tosa::SliceOp::create(
      b, loc, RankedTensorType::get({1, T - 1}, i32), tokens,
      d.shapeConst({0, 1}), d.shapeConst({1, T - 1}));
  auto padType = RankedTensorType::get({1}, i32);
  Value minusOne = tosa::ConstOp::create(
      b, loc, padType,
      DenseElementsAttr::get(padType, b.getI32IntegerAttr(-1)));
  Value targets =
      tosa::PadOp::create(b, loc, RankedTensorType::get({1, T}, i32), next,
                          d.shapeConst({0, 0, 0, 1}), minusOne);
  targets = d.reshape(targets, {1, T, 1});
  auto vocabType = RankedTensorType::get({1, 1, V}, i32);
  SmallVector<int32_t> iota(V);
  for (int64_t v = 0; v < V; ++v)
    iota[v] = int32_t(v);
  Value vocab = tosa::ConstOp::create(
      b, loc, vocabType, DenseElementsAttr::get(vocabType, ArrayRef(iota)));
  Value hit = tosa::EqualOp::create(
      b, loc, RankedTensorType::get({1, T, V}, b.getI1Type()), targets, vocab);
  Value onehot =
      d.select(hit, d.splat({1, T, V}, 1.0f), d.splat({1, T, V}, 0.0f));
  SmallVector<float> weights(T, 1.0f / float(T - 1));
  weights.back() = 0.0f;
  auto colType = d.f32Type({1, T, 1});
  Value w = tosa::ConstOp::create(
      b, loc, colType, DenseElementsAttr::get(colType, ArrayRef(weights)));
  d.accumulate(logits, d.mul(d.sub(p, onehot), w));
  // loss = Σ_t w_t (m_t + log s_t − logits[t, target_t]).
  Value logS = tosa::LogOp::create(b, loc, colType, s);
  Value picked = d.reduceSum(d.mul(onehot, logits), 2);
  return d.reduceSum(d.mul(d.sub(d.add(m, logS), picked), w), 1);
}

} // namespace

FailureOr<func::FuncOp> qforge::buildGradientFunction(func::FuncOp entry,
                                                      GradLoss loss,
                                                      StringRef name) {
  auto isStatic = [](Type t) {
    auto ranked = dyn_cast<RankedTensorType>(t);
    return !ranked || ranked.hasStaticShape();
  };
  for (Type t : entry.getFunctionType().getInputs())
    if (!isStatic(t))
      return entry.emitError("qf-grad: @")
             << entry.getName()
             << " has inputs of dynamic shape; import the model with static "
                "shapes (qforge-import --shape input_ids=1xT)";
  if (entry.getNumResults() < 1 ||
      !isa<RankedTensorType>(entry.getResultTypes()[0]) ||
      !cast<RankedTensorType>(entry.getResultTypes()[0])
           .getElementType()
           .isF32())
    return entry.emitError("qf-grad: result 0 of @")
           << entry.getName() << " is not an f32 tensor";
  if (loss == GradLoss::CrossEntropy) {
    auto logits = cast<RankedTensorType>(entry.getResultTypes()[0]);
    auto ids = entry.getNumArguments()
                   ? dyn_cast<RankedTensorType>(entry.getArgumentTypes()[0])
                   : RankedTensorType();
    if (logits.getRank() != 3 || logits.getDimSize(0) != 1 || !ids ||
        ids.getRank() != 2 || ids.getDimSize(0) != 1 ||
        ids.getDimSize(1) != logits.getDimSize(1) || ids.getDimSize(1) < 2 ||
        !isa<IntegerType>(ids.getElementType()))
      return entry.emitError("qf-grad: the cross-entropy needs tokens [1, T] "
                             "(argument 0, T >= 2) and logits [1, T, V] "
                             "(result 0)");
  }

  func::FuncOp grad = entry.clone();
  grad.setName(name);
  SymbolTable(entry->getParentOfType<ModuleOp>())
      .insert(grad, ++entry->getIterator());
  Block &body = grad.getBody().front();
  auto ret = cast<func::ReturnOp>(body.getTerminator());
  std::vector<LinearWeight> linears = findConstantLinears(grad);

  // Activity: reachable from a weight and reaching the loss.
  llvm::DenseSet<Value> forward, backward, active;
  SmallVector<Value> work;
  for (const LinearWeight &l : linears)
    work.push_back(l.constOp->getResult(0));
  while (!work.empty()) {
    Value v = work.pop_back_val();
    if (!forward.insert(v).second)
      continue;
    for (Operation *user : v.getUsers())
      if (user != ret)
        llvm::append_range(work, user->getResults());
  }
  SmallVector<Value> outputs;
  for (Value v : ret.getOperands())
    if (loss == GradLoss::CrossEntropy
            ? outputs.empty()
            : isa<RankedTensorType>(v.getType()) &&
                  cast<RankedTensorType>(v.getType()).getElementType().isF32())
      outputs.push_back(v);
  llvm::append_range(work, outputs);
  while (!work.empty()) {
    Value v = work.pop_back_val();
    if (!backward.insert(v).second)
      continue;
    if (Operation *def = v.getDefiningOp())
      llvm::append_range(work, def->getOperands());
  }
  for (Value v : forward)
    if (backward.contains(v)) {
      if (!isStatic(v.getType())) {
        InFlightDiagnostic diag =
            emitError(v.getLoc(), "qf-grad: a value of dynamic shape on the "
                                  "path of a gradient; import the model with "
                                  "static shapes");
        grad.erase();
        return diag;
      }
      active.insert(v);
    }

  SmallVector<Operation *> ops;
  for (Operation &op : body.without_terminator())
    ops.push_back(&op);
  OpBuilder b(ret);
  Differentiator d(b, entry.getLoc());
  Value lossValue;
  if (loss == GradLoss::CrossEntropy) {
    lossValue = seedCrossEntropy(d, grad.getArgument(0), outputs[0]);
  } else {
    for (Value out : outputs) {
      Value sum = out;
      for (int64_t i = 0; i < Differentiator::typeOf(out).getRank(); ++i)
        sum = d.reduceSum(sum, i);
      sum = d.reshape(sum, {1});
      lossValue = lossValue ? d.add(lossValue, sum) : sum;
      d.accumulate(out, d.splat(Differentiator::typeOf(out).getShape(), 1.0f));
    }
  }
  lossValue = d.reshape(lossValue, {1});

  for (Operation *op : llvm::reverse(ops)) {
    if (op->getNumResults() != 1 || op->getNumOperands() == 0 ||
        !active.contains(op->getResult(0)))
      continue;
    auto it = d.adjoint.find(op->getResult(0));
    if (it == d.adjoint.end())
      continue;
    b.setInsertionPoint(ret);
    d.loc = op->getLoc();
    if (failed(d.backward(op, it->second, active))) {
      grad.erase();
      return failure();
    }
  }

  d.loc = entry.getLoc();
  SmallVector<Value> results{lossValue};
  std::vector<std::string> names{"loss"};
  for (const LinearWeight &l : linears) {
    Value w = l.constOp->getResult(0);
    Value g = d.adjoint.lookup(w);
    results.push_back(g ? g
                        : d.splat(Differentiator::typeOf(w).getShape(), 0.0f));
    names.push_back("grad." + l.name);
  }
  setFunctionResults(grad, results, names);
  return grad;
}

namespace {
struct GradPass : qforge::impl::GradPassBase<GradPass> {
  using GradPassBase::GradPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto fail = [&](const Twine &message) {
      module.emitError("qf-grad: ") << message;
      signalPassFailure();
    };
    if (loss != "cross-entropy" && loss != "sum")
      return fail("unknown loss '" + loss + "' (cross-entropy or sum)");
    auto fn = module.lookupSymbol<func::FuncOp>(entry);
    if (!fn)
      return fail("the module has no @" + entry);
    std::string name = entry + "_grad";
    if (!replace && module.lookupSymbol(name))
      return fail("the module already has a @" + name);
    FailureOr<func::FuncOp> grad = buildGradientFunction(
        fn, loss == "sum" ? GradLoss::Sum : GradLoss::CrossEntropy,
        replace ? "qf.grad.tmp" : name);
    if (failed(grad))
      return signalPassFailure();
    if (replace) {
      fn.erase();
      grad->setName(entry);
    }
  }
};
} // namespace
