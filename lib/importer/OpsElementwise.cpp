//===- OpsElementwise.cpp - Elementwise ONNX operators --------------------===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// Arithmetic, comparisons and logic with numpy broadcasting; unary math and
// activations; Where, Cast, Clip, Identity and the variadic Max/Min/Sum/Mean.
//
// Every operator here folds on the host when all its inputs are constants
// (up to NodeContext::isFoldable elements): torch's shape arithmetic on
// int64 tensors never reaches the IR. Otherwise each lowers to TOSA;
// functions TOSA lacks are composed from its primitives (Sqrt, Erf, Round,
// the activations), and the few integer operations it has no op for use a
// linalg.generic (NodeContext::elementwiseGeneric).
//
//===----------------------------------------------------------------------===//

#include "GraphConverter.h"

#include "mlir/Dialect/Tosa/IR/TosaOps.h"

#include <cmath>
#include <limits>

using namespace mlir;
using namespace qforge::importer::detail;

namespace {

using Binary = NodeContext::Binary;

/// Which element types an operator accepts.
enum class Domain { Float, Number, Bool, Any };

LogicalResult checkDomain(NodeContext &ctx, Type elementType, Domain domain) {
  bool isBool = elementType.isInteger(1);
  switch (domain) {
  case Domain::Float:
    if (isa<FloatType>(elementType))
      return success();
    return ctx.fail("expects a float tensor");
  case Domain::Number:
    if (!isBool)
      return success();
    return ctx.fail("expects a numeric tensor, not bool");
  case Domain::Bool:
    if (isBool)
      return success();
    return ctx.fail("expects a bool tensor");
  case Domain::Any:
    return success();
  }
  llvm_unreachable("unknown domain");
}

//===----------------------------------------------------------------------===//
// Host semantics
//===----------------------------------------------------------------------===//

HostValue hostBinary(Binary kind, HostValue a, HostValue b) {
  bool isFloat = a.isFloat;
  auto boolean = [](bool v) { return HostValue::ofInt(v ? 1 : 0); };
  switch (kind) {
  case Binary::Add:
    return isFloat ? HostValue::ofFloat(a.f + b.f)
                   : HostValue::ofInt(int64_t(uint64_t(a.i) + uint64_t(b.i)));
  case Binary::Sub:
    return isFloat ? HostValue::ofFloat(a.f - b.f)
                   : HostValue::ofInt(int64_t(uint64_t(a.i) - uint64_t(b.i)));
  case Binary::Mul:
    return isFloat ? HostValue::ofFloat(a.f * b.f)
                   : HostValue::ofInt(int64_t(uint64_t(a.i) * uint64_t(b.i)));
  case Binary::Div:
    if (isFloat)
      return HostValue::ofFloat(a.f / b.f);
    return HostValue::ofInt(b.i == 0 ? 0 : a.i / b.i);
  case Binary::Max:
    if (isFloat)
      return HostValue::ofFloat(std::isnan(a.f) || std::isnan(b.f)
                                    ? std::nan("")
                                    : std::max(a.f, b.f));
    return HostValue::ofInt(std::max(a.i, b.i));
  case Binary::Min:
    if (isFloat)
      return HostValue::ofFloat(std::isnan(a.f) || std::isnan(b.f)
                                    ? std::nan("")
                                    : std::min(a.f, b.f));
    return HostValue::ofInt(std::min(a.i, b.i));
  case Binary::Pow:
    return HostValue::ofFloat(std::pow(a.asDouble(), b.asDouble()));
  case Binary::Mod:
  case Binary::FMod: {
    if (isFloat)
      return HostValue::ofFloat(std::fmod(a.f, b.f));
    if (b.i == 0)
      return HostValue::ofInt(0);
    int64_t r = a.i % b.i;
    if (kind == Binary::Mod && r != 0 && ((r < 0) != (b.i < 0)))
      r += b.i;
    return HostValue::ofInt(r);
  }
  case Binary::Equal:
    return boolean(isFloat ? a.f == b.f : a.i == b.i);
  case Binary::Greater:
    return boolean(isFloat ? a.f > b.f : a.i > b.i);
  case Binary::GreaterEqual:
    return boolean(isFloat ? a.f >= b.f : a.i >= b.i);
  case Binary::Less:
    return boolean(isFloat ? a.f < b.f : a.i < b.i);
  case Binary::LessEqual:
    return boolean(isFloat ? a.f <= b.f : a.i <= b.i);
  case Binary::And:
    return boolean(a.asBool() && b.asBool());
  case Binary::Or:
    return boolean(a.asBool() || b.asBool());
  case Binary::Xor:
    return boolean(a.asBool() != b.asBool());
  }
  llvm_unreachable("unknown binary kind");
}

bool isComparison(Binary kind) {
  switch (kind) {
  case Binary::Equal:
  case Binary::Greater:
  case Binary::GreaterEqual:
  case Binary::Less:
  case Binary::LessEqual:
  case Binary::And:
  case Binary::Or:
  case Binary::Xor:
    return true;
  default:
    return false;
  }
}

//===----------------------------------------------------------------------===//
// Binary operators
//===----------------------------------------------------------------------===//

/// Folds `kind` of two constants, or emits it.
FailureOr<Value> binaryOf(NodeContext &ctx, Binary kind, unsigned lhs,
                          unsigned rhs, bool &folded) {
  folded = false;
  const ConstTensor *a = ctx.getConstantInput(lhs);
  const ConstTensor *b = ctx.getConstantInput(rhs);
  if (a && b && a->getElementType() == b->getElementType()) {
    FailureOr<SmallVector<int64_t>> shape =
        broadcastShapeList({a->getShape(), b->getShape()});
    if (succeeded(shape) && NodeContext::isFoldable(*shape)) {
      Type resultType = isComparison(kind)
                            ? IntegerType::get(ctx.getContext(), 1)
                            : a->getElementType();
      ctx.setConstantOutput(
          0, foldElementwise({a, b}, resultType, [&](ArrayRef<HostValue> v) {
            return hostBinary(kind, v[0], v[1]);
          }));
      folded = true;
      return Value();
    }
  }
  FailureOr<TypedValue<RankedTensorType>> av = ctx.getTensorInput(lhs);
  if (failed(av))
    return failure();
  FailureOr<TypedValue<RankedTensorType>> bv = ctx.getTensorInput(rhs);
  if (failed(bv))
    return failure();
  return ctx.binary(kind, *av, *bv);
}

template <Binary Kind> LogicalResult convertBinary(NodeContext &ctx) {
  bool folded;
  FailureOr<Value> result = binaryOf(ctx, Kind, 0, 1, folded);
  if (failed(result))
    return failure();
  if (!folded)
    ctx.setOutput(0, *result);
  return success();
}

LogicalResult convertMod(NodeContext &ctx) {
  bool fmod = ctx.getIntAttr("fmod", 0) != 0;
  bool folded;
  FailureOr<Value> result =
      binaryOf(ctx, fmod ? Binary::FMod : Binary::Mod, 0, 1, folded);
  if (failed(result))
    return failure();
  if (!folded)
    ctx.setOutput(0, *result);
  return success();
}

/// Pow(X, Y): Y may have another numeric type than X; the result has X's.
/// Integer bases are raised in float and rounded back.
LogicalResult convertPow(NodeContext &ctx) {
  FailureOr<RankedTensorType> xType = ctx.getInputType(0);
  FailureOr<RankedTensorType> yType = ctx.getInputType(1);
  if (failed(xType) || failed(yType))
    return failure();
  Type xElem = xType->getElementType();
  if (failed(checkDomain(ctx, xElem, Domain::Number)) ||
      failed(checkDomain(ctx, yType->getElementType(), Domain::Number)))
    return failure();
  FailureOr<SmallVector<int64_t>> shape =
      ctx.broadcastShapes(xType->getShape(), yType->getShape());
  if (failed(shape))
    return failure();

  const ConstTensor *x = ctx.getConstantInput(0);
  const ConstTensor *y = ctx.getConstantInput(1);
  if (x && y && NodeContext::isFoldable(*shape)) {
    bool intBase = !isa<FloatType>(xElem);
    ctx.setConstantOutput(
        0, foldElementwise({x, y}, xElem, [&](ArrayRef<HostValue> v) {
          double r = std::pow(v[0].asDouble(), v[1].asDouble());
          return intBase ? HostValue::ofInt(int64_t(std::llround(r)))
                         : HostValue::ofFloat(r);
        }));
    return success();
  }

  FailureOr<TypedValue<RankedTensorType>> xv = ctx.getTensorInput(0);
  FailureOr<TypedValue<RankedTensorType>> yv = ctx.getTensorInput(1);
  if (failed(xv) || failed(yv))
    return failure();
  // x^2 is x*x, exact and cheaper (LayerNorm/RMSNorm variance in torch).
  if (y && y->getNumElements() == 1 && isa<FloatType>(xElem)) {
    FailureOr<SmallVector<double>> e = y->getFloatValues();
    if (succeeded(e) && (*e)[0] == 2.0 &&
        succeeded(ctx.broadcastShapes(xType->getShape(), y->getShape())) &&
        *shape == ArrayRef<int64_t>(xType->getShape())) {
      FailureOr<Value> square = ctx.binary(Binary::Mul, *xv, *xv);
      if (failed(square))
        return failure();
      ctx.setOutput(0, *square);
      return success();
    }
  }
  Type computeType = isa<FloatType>(xElem)
                         ? xElem
                         : (xElem.getIntOrFloatBitWidth() > 16
                                ? Type(Float64Type::get(ctx.getContext()))
                                : Type(Float32Type::get(ctx.getContext())));
  Value base = ctx.castTo(*xv, computeType);
  Value exponent = ctx.castTo(*yv, computeType);
  FailureOr<Value> result = ctx.binary(Binary::Pow, base, exponent);
  if (failed(result))
    return failure();
  ctx.setOutput(0, ctx.castTo(*result, xElem));
  return success();
}

/// Max, Min, Sum, Mean over one or more inputs.
template <Binary Kind, bool IsMean = false>
LogicalResult convertVariadic(NodeContext &ctx) {
  unsigned n = ctx.getNumInputs();
  if (n == 1 && !IsMean)
    return ctx.aliasOutput(0, 0);
  SmallVector<RankedTensorType> types;
  SmallVector<ArrayRef<int64_t>> shapes;
  for (unsigned i = 0; i < n; ++i) {
    FailureOr<RankedTensorType> type = ctx.getInputType(i);
    if (failed(type))
      return failure();
    if (failed(checkDomain(ctx, type->getElementType(),
                           IsMean ? Domain::Float : Domain::Number)))
      return failure();
    types.push_back(*type);
  }
  for (RankedTensorType &type : types)
    shapes.push_back(type.getShape());
  FailureOr<SmallVector<int64_t>> shape = broadcastShapeList(shapes);
  if (failed(shape))
    return ctx.fail("input shapes do not broadcast");
  Type elementType = types.front().getElementType();

  if (std::optional<SmallVector<const ConstTensor *>> constants =
          ctx.getConstantInputs()) {
    if (NodeContext::isFoldable(*shape)) {
      ctx.setConstantOutput(
          0,
          foldElementwise(*constants, elementType, [&](ArrayRef<HostValue> v) {
            HostValue acc = v[0];
            for (const HostValue &x : v.drop_front())
              acc = hostBinary(Kind, acc, x);
            if (IsMean)
              acc = HostValue::ofFloat(acc.f / v.size());
            return acc;
          }));
      return success();
    }
  }

  FailureOr<TypedValue<RankedTensorType>> first = ctx.getTensorInput(0);
  if (failed(first))
    return failure();
  Value acc = *first;
  for (unsigned i = 1; i < n; ++i) {
    FailureOr<TypedValue<RankedTensorType>> next = ctx.getTensorInput(i);
    if (failed(next))
      return failure();
    FailureOr<Value> combined = ctx.binary(Kind, acc, *next);
    if (failed(combined))
      return failure();
    acc = *combined;
  }
  if (IsMean) {
    FailureOr<Value> mean =
        ctx.binary(Binary::Mul, acc, ctx.scalarLike(acc, 1.0 / n));
    if (failed(mean))
      return failure();
    acc = *mean;
  }
  // One input of a smaller shape than the broadcast one cannot remain.
  ctx.setOutput(0, ctx.broadcastTo(ctx.expandRank(acc, shape->size()), *shape));
  return success();
}

//===----------------------------------------------------------------------===//
// Unary operators
//===----------------------------------------------------------------------===//

/// Converts a one-input operator: folds with `host` when the input is a
/// constant, else emits `emit(x)`. `resultElementType` defaults to the
/// input's.
LogicalResult convertUnary(NodeContext &ctx, Domain domain,
                           function_ref<HostValue(HostValue)> host,
                           function_ref<FailureOr<Value>(Value)> emit,
                           Type resultElementType = nullptr) {
  FailureOr<RankedTensorType> type = ctx.getInputType(0);
  if (failed(type))
    return failure();
  if (failed(checkDomain(ctx, type->getElementType(), domain)))
    return failure();
  if (!resultElementType)
    resultElementType = type->getElementType();
  const ConstTensor *x = ctx.getConstantInput(0);
  if (x && NodeContext::isFoldable(x->getNumElements())) {
    ctx.setConstantOutput(
        0, foldElementwise({x}, resultElementType,
                           [&](ArrayRef<HostValue> v) { return host(v[0]); }));
    return success();
  }
  FailureOr<TypedValue<RankedTensorType>> value = ctx.getTensorInput(0);
  if (failed(value))
    return failure();
  FailureOr<Value> result = emit(*value);
  if (failed(result))
    return failure();
  ctx.setOutput(0, *result);
  return success();
}

/// A unary operator on floats that maps to one TOSA op.
template <typename OpTy, double (*Fn)(double)>
LogicalResult convertFloatUnary(NodeContext &ctx) {
  return convertUnary(
      ctx, Domain::Float,
      [](HostValue v) { return HostValue::ofFloat(Fn(v.f)); },
      [&](Value x) -> FailureOr<Value> { return ctx.unary<OpTy>(x); });
}

double hostSigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }
double hostReciprocal(double x) { return 1.0 / x; }
double hostExp(double x) { return std::exp(x); }
double hostLog(double x) { return std::log(x); }
double hostTanh(double x) { return std::tanh(x); }
double hostCos(double x) { return std::cos(x); }
double hostSin(double x) { return std::sin(x); }
double hostFloor(double x) { return std::floor(x); }
double hostCeil(double x) { return std::ceil(x); }

/// `f(x)` for floats as a chain of TOSA ops on `x`, with helpers.
struct FloatMath {
  NodeContext &ctx;

  Value c(Value like, double v) { return ctx.scalarLike(like, v); }
  Value add(Value a, Value b) { return *ctx.binary(Binary::Add, a, b); }
  Value sub(Value a, Value b) { return *ctx.binary(Binary::Sub, a, b); }
  Value mul(Value a, Value b) { return *ctx.binary(Binary::Mul, a, b); }
  Value max(Value a, Value b) { return *ctx.binary(Binary::Max, a, b); }
  Value min(Value a, Value b) { return *ctx.binary(Binary::Min, a, b); }
  Value less(Value a, Value b) { return *ctx.binary(Binary::Less, a, b); }
  Value greater(Value a, Value b) { return *ctx.binary(Binary::Greater, a, b); }
  Value eq(Value a, Value b) { return *ctx.binary(Binary::Equal, a, b); }
  Value select(Value cond, Value a, Value b) { return *ctx.select(cond, a, b); }
  Value exp(Value x) { return ctx.unary<tosa::ExpOp>(x); }
  Value log(Value x) { return ctx.unary<tosa::LogOp>(x); }
  Value abs(Value x) { return ctx.unary<tosa::AbsOp>(x); }
  Value floor(Value x) { return ctx.unary<tosa::FloorOp>(x); }
  Value ceil(Value x) { return ctx.unary<tosa::CeilOp>(x); }
  Value recip(Value x) { return ctx.unary<tosa::ReciprocalOp>(x); }
  Value clamp(Value x, double lo, double hi) {
    auto type = cast<RankedTensorType>(x.getType());
    auto floatType = cast<FloatType>(type.getElementType());
    OpBuilder &b = ctx.getBuilder();
    return tosa::ClampOp::create(b, ctx.getLoc(), type, x,
                                 b.getFloatAttr(floatType, lo),
                                 b.getFloatAttr(floatType, hi));
  }
};

/// erf by Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7):
/// erf(|x|) = 1 - t (a1 + t (a2 + t (a3 + t (a4 + t a5)))) exp(-x^2),
/// t = 1 / (1 + p |x|), and erf is odd.
constexpr double kErfP = 0.3275911;
constexpr double kErfA[5] = {0.254829592, -0.284496736, 1.421413741,
                             -1.453152027, 1.061405429};

Value emitErf(NodeContext &ctx, Value x) {
  FloatMath m{ctx};
  Value ax = m.abs(x);
  Value t = m.recip(m.add(m.mul(ax, m.c(x, kErfP)), m.c(x, 1.0)));
  Value poly = m.c(x, kErfA[4]);
  for (int i = 3; i >= 0; --i)
    poly = m.add(m.mul(poly, t), m.c(x, kErfA[i]));
  poly = m.mul(poly, t);
  Value gauss = m.exp(ctx.negate(m.mul(x, x)));
  Value erfAbs = m.sub(m.c(x, 1.0), m.mul(poly, gauss));
  return m.select(m.less(x, m.c(x, 0.0)), ctx.negate(erfAbs), erfAbs);
}

double hostErf(double x) { return std::erf(x); }

/// Round half to even: r = floor(x + 0.5), less one when x was a tie and r
/// is odd.
Value emitRound(NodeContext &ctx, Value x) {
  FloatMath m{ctx};
  Value r = m.floor(m.add(x, m.c(x, 0.5)));
  Value tie = m.eq(m.sub(r, x), m.c(x, 0.5));
  Value half = m.mul(r, m.c(x, 0.5));
  Value odd = ctx.unary<tosa::LogicalNotOp>(m.eq(m.floor(half), half));
  Value both = *ctx.binary(Binary::And, tie, odd);
  return m.select(both, m.sub(r, m.c(x, 1.0)), r);
}

double hostRound(double x) { return std::nearbyint(x); }

LogicalResult convertErf(NodeContext &ctx) {
  return convertUnary(
      ctx, Domain::Float,
      [](HostValue v) { return HostValue::ofFloat(hostErf(v.f)); },
      [&](Value x) -> FailureOr<Value> { return emitErf(ctx, x); });
}

LogicalResult convertRound(NodeContext &ctx) {
  return convertUnary(
      ctx, Domain::Float,
      [](HostValue v) { return HostValue::ofFloat(hostRound(v.f)); },
      [&](Value x) -> FailureOr<Value> { return emitRound(ctx, x); });
}

/// sqrt(x) = 1 / rsqrt(x), which keeps sqrt(0) = 0.
LogicalResult convertSqrt(NodeContext &ctx) {
  return convertUnary(
      ctx, Domain::Float,
      [](HostValue v) { return HostValue::ofFloat(std::sqrt(v.f)); },
      [&](Value x) -> FailureOr<Value> {
        return ctx.unary<tosa::ReciprocalOp>(ctx.unary<tosa::RsqrtOp>(x));
      });
}

LogicalResult convertNeg(NodeContext &ctx) {
  return convertUnary(
      ctx, Domain::Number,
      [](HostValue v) {
        return v.isFloat ? HostValue::ofFloat(-v.f)
                         : HostValue::ofInt(int64_t(0 - uint64_t(v.i)));
      },
      [&](Value x) -> FailureOr<Value> { return ctx.negate(x); });
}

LogicalResult convertAbs(NodeContext &ctx) {
  return convertUnary(
      ctx, Domain::Number,
      [](HostValue v) {
        return v.isFloat ? HostValue::ofFloat(std::fabs(v.f))
                         : HostValue::ofInt(v.i < 0 ? -v.i : v.i);
      },
      [&](Value x) -> FailureOr<Value> { return ctx.unary<tosa::AbsOp>(x); });
}

LogicalResult convertSign(NodeContext &ctx) {
  return convertUnary(
      ctx, Domain::Number,
      [](HostValue v) {
        if (v.isFloat)
          return HostValue::ofFloat(v.f > 0 ? 1.0 : v.f < 0 ? -1.0 : v.f);
        return HostValue::ofInt(v.i > 0 ? 1 : v.i < 0 ? -1 : 0);
      },
      [&](Value x) -> FailureOr<Value> {
        FloatMath m{ctx};
        Value zero = m.c(x, 0.0);
        Value negative = m.select(m.less(x, zero), m.c(x, -1.0), zero);
        return m.select(m.greater(x, zero), m.c(x, 1.0), negative);
      });
}

LogicalResult convertNot(NodeContext &ctx) {
  return convertUnary(
      ctx, Domain::Bool,
      [](HostValue v) { return HostValue::ofInt(v.i ? 0 : 1); },
      [&](Value x) -> FailureOr<Value> {
        return ctx.unary<tosa::LogicalNotOp>(x);
      });
}

LogicalResult convertIsNaN(NodeContext &ctx) {
  Type i1 = IntegerType::get(ctx.getContext(), 1);
  return convertUnary(
      ctx, Domain::Float,
      [](HostValue v) { return HostValue::ofInt(std::isnan(v.f)); },
      [&](Value x) -> FailureOr<Value> {
        FailureOr<Value> same = ctx.binary(Binary::Equal, x, x);
        if (failed(same))
          return failure();
        return ctx.unary<tosa::LogicalNotOp>(*same);
      },
      i1);
}

LogicalResult convertIsInf(NodeContext &ctx) {
  bool negative = ctx.getIntAttr("detect_negative", 1) != 0;
  bool positive = ctx.getIntAttr("detect_positive", 1) != 0;
  Type i1 = IntegerType::get(ctx.getContext(), 1);
  double inf = std::numeric_limits<double>::infinity();
  return convertUnary(
      ctx, Domain::Float,
      [&](HostValue v) {
        return HostValue::ofInt(std::isinf(v.f) &&
                                (v.f > 0 ? positive : negative));
      },
      [&](Value x) -> FailureOr<Value> {
        FloatMath m{ctx};
        auto type = cast<RankedTensorType>(x.getType());
        if (!type.hasStaticShape() && !positive && !negative)
          return ctx.binary(Binary::Equal, x,
                            m.c(x, std::numeric_limits<double>::quiet_NaN()));
        Value result = ctx.splat(i1, 0.0,
                                 type.hasStaticShape()
                                     ? type.getShape()
                                     : SmallVector<int64_t>(type.getRank(), 1));
        if (positive)
          result = *ctx.binary(Binary::Or, result, m.eq(x, m.c(x, inf)));
        if (negative)
          result = *ctx.binary(Binary::Or, result, m.eq(x, m.c(x, -inf)));
        return result;
      },
      i1);
}

//===----------------------------------------------------------------------===//
// Activations
//===----------------------------------------------------------------------===//

LogicalResult convertRelu(NodeContext &ctx) {
  return convertUnary(
      ctx, Domain::Number,
      [](HostValue v) {
        return v.isFloat ? HostValue::ofFloat(v.f < 0 ? 0.0 : v.f)
                         : HostValue::ofInt(std::max<int64_t>(v.i, 0));
      },
      [&](Value x) -> FailureOr<Value> {
        auto type = cast<RankedTensorType>(x.getType());
        OpBuilder &b = ctx.getBuilder();
        Attribute min, max;
        if (auto floatType = dyn_cast<FloatType>(type.getElementType())) {
          min = b.getFloatAttr(floatType, 0.0);
          max = b.getFloatAttr(floatType,
                               std::numeric_limits<double>::infinity());
        } else {
          auto intType = cast<IntegerType>(type.getElementType());
          min = b.getIntegerAttr(intType, 0);
          max = b.getIntegerAttr(
              intType, llvm::APInt::getSignedMaxValue(intType.getWidth()));
        }
        return Value(tosa::ClampOp::create(b, ctx.getLoc(), type, x, min, max));
      });
}

/// A float activation given as a host function and a TOSA composition.
LogicalResult convertActivation(NodeContext &ctx,
                                function_ref<double(double)> host,
                                function_ref<Value(FloatMath &, Value)> emit) {
  return convertUnary(
      ctx, Domain::Float,
      [&](HostValue v) { return HostValue::ofFloat(host(v.f)); },
      [&](Value x) -> FailureOr<Value> {
        FloatMath m{ctx};
        return emit(m, x);
      });
}

LogicalResult convertSigmoid(NodeContext &ctx) {
  return convertFloatUnary<tosa::SigmoidOp, hostSigmoid>(ctx);
}

LogicalResult convertLeakyRelu(NodeContext &ctx) {
  double alpha = ctx.getFloatAttr("alpha", 0.01f);
  return convertActivation(
      ctx, [&](double x) { return x < 0 ? alpha * x : x; },
      [&](FloatMath &m, Value x) {
        return m.select(m.less(x, m.c(x, 0.0)), m.mul(x, m.c(x, alpha)), x);
      });
}

LogicalResult convertElu(NodeContext &ctx) {
  double alpha = ctx.getFloatAttr("alpha", 1.0f);
  return convertActivation(
      ctx, [&](double x) { return x < 0 ? alpha * (std::exp(x) - 1) : x; },
      [&](FloatMath &m, Value x) {
        Value neg = m.mul(m.sub(m.exp(x), m.c(x, 1.0)), m.c(x, alpha));
        return m.select(m.less(x, m.c(x, 0.0)), neg, x);
      });
}

LogicalResult convertSelu(NodeContext &ctx) {
  double alpha = ctx.getFloatAttr("alpha", 1.67326319217681884765625f);
  double gamma = ctx.getFloatAttr("gamma", 1.05070102214813232421875f);
  return convertActivation(
      ctx,
      [&](double x) {
        return gamma * (x > 0 ? x : alpha * std::exp(x) - alpha);
      },
      [&](FloatMath &m, Value x) {
        Value neg = m.sub(m.mul(m.exp(x), m.c(x, alpha)), m.c(x, alpha));
        Value y = m.select(m.greater(x, m.c(x, 0.0)), x, neg);
        return m.mul(y, m.c(x, gamma));
      });
}

LogicalResult convertCelu(NodeContext &ctx) {
  double alpha = ctx.getFloatAttr("alpha", 1.0f);
  return convertActivation(
      ctx,
      [&](double x) {
        return std::max(0.0, x) +
               std::min(0.0, alpha * (std::exp(x / alpha) - 1));
      },
      [&](FloatMath &m, Value x) {
        Value zero = m.c(x, 0.0);
        Value e = m.sub(m.exp(m.mul(x, m.c(x, 1.0 / alpha))), m.c(x, 1.0));
        return m.add(m.max(x, zero), m.min(m.mul(e, m.c(x, alpha)), zero));
      });
}

LogicalResult convertHardSigmoid(NodeContext &ctx) {
  double alpha = ctx.getFloatAttr("alpha", 0.2f);
  double beta = ctx.getFloatAttr("beta", 0.5f);
  return convertActivation(
      ctx, [&](double x) { return std::clamp(alpha * x + beta, 0.0, 1.0); },
      [&](FloatMath &m, Value x) {
        return m.clamp(m.add(m.mul(x, m.c(x, alpha)), m.c(x, beta)), 0.0, 1.0);
      });
}

LogicalResult convertHardSwish(NodeContext &ctx) {
  return convertActivation(
      ctx, [](double x) { return x * std::clamp(x / 6.0 + 0.5, 0.0, 1.0); },
      [&](FloatMath &m, Value x) {
        Value hs =
            m.clamp(m.add(m.mul(x, m.c(x, 1.0 / 6.0)), m.c(x, 0.5)), 0.0, 1.0);
        return m.mul(x, hs);
      });
}

LogicalResult convertSoftplus(NodeContext &ctx) {
  return convertActivation(
      ctx, [](double x) { return std::log(std::exp(x) + 1.0); },
      [&](FloatMath &m, Value x) {
        return m.log(m.add(m.exp(x), m.c(x, 1.0)));
      });
}

LogicalResult convertSoftsign(NodeContext &ctx) {
  return convertActivation(
      ctx, [](double x) { return x / (1.0 + std::fabs(x)); },
      [&](FloatMath &m, Value x) {
        return m.mul(x, m.recip(m.add(m.abs(x), m.c(x, 1.0))));
      });
}

LogicalResult convertThresholdedRelu(NodeContext &ctx) {
  double alpha = ctx.getFloatAttr("alpha", 1.0f);
  return convertActivation(
      ctx, [&](double x) { return x > alpha ? x : 0.0; },
      [&](FloatMath &m, Value x) {
        return m.select(m.greater(x, m.c(x, alpha)), x, m.c(x, 0.0));
      });
}

/// PRelu(X, slope) = X < 0 ? slope * X : X, slope broadcast to X.
LogicalResult convertPRelu(NodeContext &ctx) {
  FailureOr<TypedValue<RankedTensorType>> x = ctx.getTensorInput(0);
  FailureOr<TypedValue<RankedTensorType>> slope = ctx.getTensorInput(1);
  if (failed(x) || failed(slope))
    return failure();
  if (failed(checkDomain(ctx, x->getType().getElementType(), Domain::Float)))
    return failure();
  FloatMath m{ctx};
  FailureOr<Value> scaled = ctx.binary(Binary::Mul, *x, *slope);
  if (failed(scaled))
    return failure();
  FailureOr<Value> y = ctx.select(m.less(*x, m.c(*x, 0.0)), *scaled, *x);
  if (failed(y))
    return failure();
  ctx.setOutput(0, *y);
  return success();
}

//===----------------------------------------------------------------------===//
// Where, Cast, Clip, Identity
//===----------------------------------------------------------------------===//

LogicalResult convertWhere(NodeContext &ctx) {
  FailureOr<RankedTensorType> condType = ctx.getInputType(0);
  FailureOr<RankedTensorType> xType = ctx.getInputType(1);
  FailureOr<RankedTensorType> yType = ctx.getInputType(2);
  if (failed(condType) || failed(xType) || failed(yType))
    return failure();
  if (failed(checkDomain(ctx, condType->getElementType(), Domain::Bool)))
    return failure();
  if (xType->getElementType() != yType->getElementType())
    return ctx.fail("X and Y have different element types");
  FailureOr<SmallVector<int64_t>> shape = broadcastShapeList(
      {condType->getShape(), xType->getShape(), yType->getShape()});
  if (failed(shape))
    return ctx.fail("shapes " + formatShape(condType->getShape()) + ", " +
                    formatShape(xType->getShape()) + " and " +
                    formatShape(yType->getShape()) + " do not broadcast");
  if (std::optional<SmallVector<const ConstTensor *>> constants =
          ctx.getConstantInputs()) {
    if (NodeContext::isFoldable(*shape)) {
      ctx.setConstantOutput(0,
                            foldElementwise(*constants, xType->getElementType(),
                                            [](ArrayRef<HostValue> v) {
                                              return v[0].i ? v[1] : v[2];
                                            }));
      return success();
    }
  }
  FailureOr<TypedValue<RankedTensorType>> cond = ctx.getTensorInput(0);
  FailureOr<TypedValue<RankedTensorType>> x = ctx.getTensorInput(1);
  FailureOr<TypedValue<RankedTensorType>> y = ctx.getTensorInput(2);
  if (failed(cond) || failed(x) || failed(y))
    return failure();
  FailureOr<Value> result = ctx.select(*cond, *x, *y);
  if (failed(result))
    return failure();
  ctx.setOutput(0, *result);
  return success();
}

/// Cast of input 0 to `target` with ONNX's semantics: floats to integers
/// truncate toward zero, anything to bool is `!= 0`, bool to numbers is 0
/// or 1.
LogicalResult castInputTo(NodeContext &ctx, Type target) {
  FailureOr<RankedTensorType> type = ctx.getInputType(0);
  if (failed(type))
    return failure();
  Type source = type->getElementType();
  if (source == target)
    return ctx.aliasOutput(0, 0);

  const ConstTensor *x = ctx.getConstantInput(0);
  if (x && NodeContext::isFoldable(x->getNumElements())) {
    ctx.setConstantOutput(
        0, foldElementwise({x}, target,
                           [](ArrayRef<HostValue> v) { return v[0]; }));
    return success();
  }
  FailureOr<TypedValue<RankedTensorType>> value = ctx.getTensorInput(0);
  if (failed(value))
    return failure();
  Value v = *value;
  FloatMath m{ctx};
  Value result;
  if (target.isInteger(1)) {
    result = ctx.unary<tosa::LogicalNotOp>(m.eq(v, m.c(v, 0.0)));
  } else if (source.isInteger(1)) {
    auto resultType = type->clone(target);
    Value one =
        ctx.splat(target, 1.0, SmallVector<int64_t>(type->getRank(), 1));
    Value zero =
        ctx.splat(target, 0.0, SmallVector<int64_t>(type->getRank(), 1));
    (void)resultType;
    result = m.select(v, one, zero);
  } else if (isa<FloatType>(source) && !isa<FloatType>(target)) {
    Value truncated = m.select(m.less(v, m.c(v, 0.0)), m.ceil(v), m.floor(v));
    result = ctx.castTo(truncated, target);
  } else {
    result = ctx.castTo(v, target);
  }
  ctx.setOutput(0, result);
  return success();
}

LogicalResult convertCast(NodeContext &ctx) {
  const onnx::AttributeProto *to = ctx.getAttr("to");
  if (!to || !to->has_i())
    return ctx.fail("expects an integer 'to' attribute");
  Type target = getElementType(ctx.getContext(), to->i());
  if (!target)
    return ctx.fail("cast to " + getONNXTypeName(to->i()) +
                    " is not supported");
  return castInputTo(ctx, target);
}

/// CastLike(input, target): Cast to the element type of `target`.
LogicalResult convertCastLike(NodeContext &ctx) {
  FailureOr<RankedTensorType> like = ctx.getInputType(1);
  if (failed(like))
    return failure();
  return castInputTo(ctx, like->getElementType());
}

/// Clip(x, min, max): opset 11 takes the bounds as optional inputs, older
/// opsets as attributes. Constant bounds become one tosa.clamp.
LogicalResult convertClip(NodeContext &ctx) {
  FailureOr<RankedTensorType> type = ctx.getInputType(0);
  if (failed(type))
    return failure();
  Type elementType = type->getElementType();
  if (failed(checkDomain(ctx, elementType, Domain::Number)))
    return failure();
  bool isFloat = isa<FloatType>(elementType);
  unsigned width = elementType.getIntOrFloatBitWidth();

  // Bounds known at import time, as HostValues; nullopt when absent.
  std::optional<HostValue> bounds[2];
  bool dynamic[2] = {false, false};
  if (ctx.getOpset() < 11) {
    if (ctx.getAttr("min"))
      bounds[0] = HostValue::ofFloat(ctx.getFloatAttr("min", 0));
    if (ctx.getAttr("max"))
      bounds[1] = HostValue::ofFloat(ctx.getFloatAttr("max", 0));
  } else {
    for (unsigned i = 0; i < 2; ++i) {
      if (!ctx.hasInput(i + 1))
        continue;
      const ConstTensor *bound = ctx.getConstantInput(i + 1);
      if (!bound) {
        dynamic[i] = true;
        continue;
      }
      if (bound->getNumElements() != 1)
        return ctx.fail("bounds must be scalars");
      bounds[i] = bound->getHostValues()[0];
    }
  }

  const ConstTensor *x = ctx.getConstantInput(0);
  if (x && !dynamic[0] && !dynamic[1] &&
      NodeContext::isFoldable(x->getNumElements())) {
    ctx.setConstantOutput(
        0, foldElementwise({x}, elementType, [&](ArrayRef<HostValue> v) {
          HostValue r = v[0];
          if (isFloat) {
            if (bounds[0] && r.f < bounds[0]->asDouble())
              r.f = bounds[0]->asDouble();
            if (bounds[1] && r.f > bounds[1]->asDouble())
              r.f = bounds[1]->asDouble();
          } else {
            if (bounds[0] && r.i < bounds[0]->asInt())
              r.i = bounds[0]->asInt();
            if (bounds[1] && r.i > bounds[1]->asInt())
              r.i = bounds[1]->asInt();
          }
          return r;
        }));
    return success();
  }

  FailureOr<TypedValue<RankedTensorType>> value = ctx.getTensorInput(0);
  if (failed(value))
    return failure();
  Value result = *value;
  OpBuilder &b = ctx.getBuilder();
  if (!dynamic[0] && !dynamic[1]) {
    Attribute lo, hi;
    if (isFloat) {
      auto floatType = cast<FloatType>(elementType);
      double inf = std::numeric_limits<double>::infinity();
      lo = b.getFloatAttr(floatType, bounds[0] ? bounds[0]->asDouble() : -inf);
      hi = b.getFloatAttr(floatType, bounds[1] ? bounds[1]->asDouble() : inf);
    } else {
      int64_t minValue = llvm::APInt::getSignedMinValue(width).getSExtValue();
      int64_t maxValue = llvm::APInt::getSignedMaxValue(width).getSExtValue();
      lo = b.getIntegerAttr(elementType,
                            bounds[0] ? bounds[0]->asInt() : minValue);
      hi = b.getIntegerAttr(elementType,
                            bounds[1] ? bounds[1]->asInt() : maxValue);
    }
    // ONNX clips to max after min, so max wins when min > max.
    if (isFloat
            ? cast<FloatAttr>(lo).getValueAsDouble() >
                  cast<FloatAttr>(hi).getValueAsDouble()
            : cast<IntegerAttr>(lo).getInt() > cast<IntegerAttr>(hi).getInt())
      lo = hi;
    ctx.setOutput(
        0, tosa::ClampOp::create(b, ctx.getLoc(), *type, result, lo, hi));
    return success();
  }
  for (unsigned i = 0; i < 2; ++i) {
    if (!bounds[i] && !dynamic[i])
      continue;
    FailureOr<Value> bound =
        dynamic[i] ? FailureOr<Value>(ctx.getTensorInput(i + 1))
                   : FailureOr<Value>(
                         ctx.splat(elementType, bounds[i]->asDouble(),
                                   SmallVector<int64_t>(type->getRank(), 1)));
    if (failed(bound))
      return failure();
    FailureOr<Value> clipped =
        ctx.binary(i == 0 ? Binary::Max : Binary::Min, result, *bound);
    if (failed(clipped))
      return failure();
    result = *clipped;
  }
  ctx.setOutput(0, result);
  return success();
}

LogicalResult convertIdentity(NodeContext &ctx) {
  return ctx.aliasOutput(0, 0);
}

} // namespace

void qforge::importer::detail::registerElementwiseOps(OpTable &table) {
  using B = NodeContext::Binary;
  // Arithmetic and comparisons.
  table["Add"] = {convertBinary<B::Add>, 2, 2};
  table["Sub"] = {convertBinary<B::Sub>, 2, 2};
  table["Mul"] = {convertBinary<B::Mul>, 2, 2};
  table["Div"] = {convertBinary<B::Div>, 2, 2};
  table["Mod"] = {convertMod, 2, 2};
  table["Pow"] = {convertPow, 2, 2};
  table["Equal"] = {convertBinary<B::Equal>, 2, 2};
  table["Greater"] = {convertBinary<B::Greater>, 2, 2};
  table["GreaterOrEqual"] = {convertBinary<B::GreaterEqual>, 2, 2};
  table["Less"] = {convertBinary<B::Less>, 2, 2};
  table["LessOrEqual"] = {convertBinary<B::LessEqual>, 2, 2};
  table["And"] = {convertBinary<B::And>, 2, 2};
  table["Or"] = {convertBinary<B::Or>, 2, 2};
  table["Xor"] = {convertBinary<B::Xor>, 2, 2};
  table["Not"] = {convertNot, 1, 1};
  table["Max"] = {convertVariadic<B::Max>, 1, 64};
  table["Min"] = {convertVariadic<B::Min>, 1, 64};
  table["Sum"] = {convertVariadic<B::Add>, 1, 64};
  table["Mean"] = {convertVariadic<B::Add, /*IsMean=*/true>, 1, 64};
  // Unary math.
  table["Abs"] = {convertAbs, 1, 1};
  table["Neg"] = {convertNeg, 1, 1};
  table["Sign"] = {convertSign, 1, 1};
  table["Sqrt"] = {convertSqrt, 1, 1};
  table["Reciprocal"] = {convertFloatUnary<tosa::ReciprocalOp, hostReciprocal>,
                         1, 1};
  table["Exp"] = {convertFloatUnary<tosa::ExpOp, hostExp>, 1, 1};
  table["Log"] = {convertFloatUnary<tosa::LogOp, hostLog>, 1, 1};
  table["Tanh"] = {convertFloatUnary<tosa::TanhOp, hostTanh>, 1, 1};
  table["Cos"] = {convertFloatUnary<tosa::CosOp, hostCos>, 1, 1};
  table["Sin"] = {convertFloatUnary<tosa::SinOp, hostSin>, 1, 1};
  table["Floor"] = {convertFloatUnary<tosa::FloorOp, hostFloor>, 1, 1};
  table["Ceil"] = {convertFloatUnary<tosa::CeilOp, hostCeil>, 1, 1};
  table["Round"] = {convertRound, 1, 1};
  table["Erf"] = {convertErf, 1, 1};
  table["IsNaN"] = {convertIsNaN, 1, 1};
  table["IsInf"] = {convertIsInf, 1, 1};
  // Activations.
  table["Relu"] = {convertRelu, 1, 1};
  table["Sigmoid"] = {convertSigmoid, 1, 1};
  table["LeakyRelu"] = {convertLeakyRelu, 1, 1};
  table["PRelu"] = {convertPRelu, 2, 2};
  table["Elu"] = {convertElu, 1, 1};
  table["Selu"] = {convertSelu, 1, 1};
  table["Celu"] = {convertCelu, 1, 1};
  table["HardSigmoid"] = {convertHardSigmoid, 1, 1};
  table["HardSwish"] = {convertHardSwish, 1, 1};
  table["Softplus"] = {convertSoftplus, 1, 1};
  table["Softsign"] = {convertSoftsign, 1, 1};
  table["ThresholdedRelu"] = {convertThresholdedRelu, 1, 1};
  // Selection and conversion.
  table["Where"] = {convertWhere, 3, 3};
  table["Cast"] = {convertCast, 1, 1};
  table["CastLike"] = {convertCastLike, 2, 2};
  table["Clip"] = {convertClip, 1, 3};
  table["Identity"] = {convertIdentity, 1, 1};
}
