//===- ChannelTrace.cpp - Channels of an input back to a linear -*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "passes/ChannelTrace.h"
#include "passes/WeightRewrite.h"

#include "llvm/ADT/SmallPtrSet.h"

using namespace mlir;

namespace qforge {
namespace {

/// Where the channels of X lie in a value of the chain: for each channel c
/// (K of them) and each dimension d of the value, coords[c * rank + d] is
/// the coordinate of c along d, or -1 on the dimensions that do not depend
/// on the channel (batch, sequence, the rows of attention). The channel
/// dimensions are the same for every c, all static, and c ↦ coordinates is
/// a bijection onto them.
struct ChannelMap {
  int64_t k = 0;
  int64_t rank = 0;
  std::vector<int64_t> coords;

  ChannelMap(int64_t k, int64_t rank)
      : k(k), rank(rank), coords(k * rank, -1) {}
  int64_t &at(int64_t c, int64_t d) { return coords[c * rank + d]; }
  int64_t at(int64_t c, int64_t d) const { return coords[c * rank + d]; }
  bool isChannelDim(int64_t d) const { return k > 0 && coords[d] >= 0; }
};

/// Checks `m` against the shape of its value: channel dimensions must be
/// static; those of size 1 (coordinate 0 for every channel) become free.
LogicalResult normalize(ChannelMap &m, ArrayRef<int64_t> shape) {
  if (int64_t(shape.size()) != m.rank)
    return failure();
  for (int64_t d = 0; d < m.rank; ++d) {
    if (!m.isChannelDim(d))
      continue;
    if (ShapedType::isDynamic(shape[d]))
      return failure();
    if (shape[d] == 1)
      for (int64_t c = 0; c < m.k; ++c)
        m.at(c, d) = -1;
  }
  return success();
}

/// The channel dimensions of `m` must have the same static size in
/// `operand` (no broadcast along them) as in `result`.
bool sameChannelDims(const ChannelMap &m, ArrayRef<int64_t> operand,
                     ArrayRef<int64_t> result) {
  if (operand.size() != result.size())
    return false;
  for (int64_t d = 0; d < m.rank; ++d)
    if (m.isChannelDim(d) && operand[d] != result[d])
      return false;
  return true;
}

ChannelMap throughTranspose(const ChannelMap &out, ArrayRef<int32_t> perms) {
  ChannelMap in(out.k, out.rank);
  for (int64_t c = 0; c < out.k; ++c)
    for (int64_t i = 0; i < out.rank; ++i)
      in.at(c, perms[i]) = out.at(c, i);
  return in;
}

/// A reshape maps row-major blocks of dimensions onto each other; `in` and
/// `out` index the input and result dimensions of one block.
struct Block {
  SmallVector<int64_t> in, out;
  bool known;
};

/// The blocks of a reshape from `inShape` to `outShape`, leaving out
/// dimensions of size 1. Blocks are matched by their static products from
/// the right, then from the left; what remains in the middle is one block,
/// unknown when it has a dynamic dimension.
SmallVector<Block> reshapeBlocks(ArrayRef<int64_t> inShape,
                                 ArrayRef<int64_t> outShape) {
  SmallVector<int64_t> in, out;
  for (auto [i, size] : llvm::enumerate(inShape))
    if (size != 1)
      in.push_back(i);
  for (auto [i, size] : llvm::enumerate(outShape))
    if (size != 1)
      out.push_back(i);
  auto dyn = [](int64_t size) { return ShapedType::isDynamic(size); };
  SmallVector<Block> blocks;
  int64_t ib = 0, ob = 0, ie = in.size(), oe = out.size();
  // One block from the end (step -1) or the start (+1); false when its
  // products cannot be matched with static sizes.
  auto match = [&](bool fromEnd) {
    if (ib >= ie || ob >= oe)
      return false;
    int64_t i = fromEnd ? ie - 1 : ib, o = fromEnd ? oe - 1 : ob;
    int64_t step = fromEnd ? -1 : 1;
    if (dyn(inShape[in[i]]) || dyn(outShape[out[o]]))
      return false;
    int64_t pin = inShape[in[i]], pout = outShape[out[o]];
    while (pin != pout) {
      if (pin < pout) {
        i += step;
        if (i < ib || i >= ie || dyn(inShape[in[i]]))
          return false;
        pin *= inShape[in[i]];
      } else {
        o += step;
        if (o < ob || o >= oe || dyn(outShape[out[o]]))
          return false;
        pout *= outShape[out[o]];
      }
    }
    Block block{{}, {}, true};
    int64_t i0 = fromEnd ? i : ib, i1 = fromEnd ? ie : i + 1;
    int64_t o0 = fromEnd ? o : ob, o1 = fromEnd ? oe : o + 1;
    block.in.assign(in.begin() + i0, in.begin() + i1);
    block.out.assign(out.begin() + o0, out.begin() + o1);
    blocks.push_back(std::move(block));
    if (fromEnd) {
      ie = i0;
      oe = o0;
    } else {
      ib = i1;
      ob = o1;
    }
    return true;
  };
  while (match(/*fromEnd=*/true)) {
  }
  while (match(/*fromEnd=*/false)) {
  }
  if (ib < ie || ob < oe) {
    Block middle{{in.begin() + ib, in.begin() + ie},
                 {out.begin() + ob, out.begin() + oe},
                 true};
    int64_t pin = 1, pout = 1;
    for (int64_t d : middle.in)
      pin =
          dyn(inShape[d]) || dyn(pin) ? ShapedType::kDynamic : pin * inShape[d];
    for (int64_t d : middle.out)
      pout = dyn(outShape[d]) || dyn(pout) ? ShapedType::kDynamic
                                           : pout * outShape[d];
    middle.known = !dyn(pin) && pin == pout;
    blocks.push_back(std::move(middle));
  }
  return blocks;
}

FailureOr<ChannelMap> throughReshape(const ChannelMap &out,
                                     ArrayRef<int64_t> inShape,
                                     ArrayRef<int64_t> outShape) {
  ChannelMap in(out.k, inShape.size());
  for (const Block &block : reshapeBlocks(inShape, outShape)) {
    int64_t channelDims = llvm::count_if(
        block.out, [&](int64_t d) { return out.isChannelDim(d); });
    if (channelDims == 0)
      continue;
    // Channel coordinates may not mix with other coordinates.
    if (!block.known || channelDims != int64_t(block.out.size()))
      return failure();
    for (int64_t c = 0; c < out.k; ++c) {
      int64_t linear = 0;
      for (int64_t d : block.out)
        linear = linear * outShape[d] + out.at(c, d);
      for (int64_t d : llvm::reverse(block.in)) {
        in.at(c, d) = linear % inShape[d];
        linear /= inShape[d];
      }
    }
  }
  return in;
}

/// For each element of a constant of static `shape` added to a value whose
/// channels lie as `m` says, the channel it is added to.
FailureOr<std::vector<int64_t>> channelsOfElements(const ChannelMap &m,
                                                   ArrayRef<int64_t> shape) {
  SmallVector<int64_t> dims;
  int64_t space = 1;
  for (int64_t d = 0; d < m.rank; ++d)
    if (m.isChannelDim(d)) {
      dims.push_back(d);
      space *= shape[d];
    }
  if (space != m.k)
    return failure();
  // The channel at each row-major position over the channel dimensions.
  std::vector<int64_t> channelAt(space, -1);
  for (int64_t c = 0; c < m.k; ++c) {
    int64_t linear = 0;
    for (int64_t d : dims)
      linear = linear * shape[d] + m.at(c, d);
    if (channelAt[linear] >= 0)
      return failure();
    channelAt[linear] = c;
  }
  int64_t count = ShapedType::getNumElements(shape);
  std::vector<int64_t> channels(count);
  SmallVector<int64_t> index(shape.size(), 0);
  for (int64_t e = 0; e < count; ++e) {
    int64_t linear = 0;
    for (int64_t d : dims)
      linear = linear * shape[d] + index[d];
    channels[e] = channelAt[linear];
    for (int64_t d = shape.size() - 1; d >= 0; --d) {
      if (++index[d] < shape[d])
        break;
      index[d] = 0;
    }
  }
  return channels;
}

struct Tracer {
  llvm::function_ref<bool(tosa::MatMulOp)> isProducer;

  FailureOr<ChannelTrace> finish(tosa::MatMulOp producer, const ChannelMap &m) {
    auto type = cast<RankedTensorType>(producer.getType());
    int64_t last = type.getRank() - 1;
    if (type.getDimSize(last) != m.k)
      return failure();
    for (int64_t d = 0; d < last; ++d)
      if (m.isChannelDim(d))
        return failure();
    ChannelTrace trace;
    trace.producer = producer;
    std::vector<bool> seen(m.k, false);
    for (int64_t c = 0; c < m.k; ++c) {
      int64_t n = m.isChannelDim(last) ? m.at(c, last) : 0;
      if (n < 0 || n >= m.k || seen[n])
        return failure();
      seen[n] = true;
      trace.producerChannel.push_back(n);
    }
    return trace;
  }

  /// Continues from `v`, whose channels lie as `m` says; `v` must have one
  /// use unless it is X (`first`).
  FailureOr<ChannelTrace> walk(Value v, ChannelMap m, bool first) {
    auto type = dyn_cast<RankedTensorType>(v.getType());
    if (!type || !type.getElementType().isF32() || (!first && !v.hasOneUse()) ||
        failed(normalize(m, type.getShape())))
      return failure();
    Operation *def = v.getDefiningOp();
    if (!def)
      return failure();
    ArrayRef<int64_t> shape = type.getShape();

    if (auto matmul = dyn_cast<tosa::MatMulOp>(def)) {
      if (isProducer(matmul))
        return finish(matmul, m);
      // out[g, t, d] = Σ_s P[g, t, s] V[g, s, d]: scaling V along g and d
      // scales the result alike; the rows t of the result are not channels.
      auto bType = dyn_cast<RankedTensorType>(matmul.getB().getType());
      if (m.rank != 3 || m.isChannelDim(1) || !bType || bType.getRank() != 3 ||
          !sameChannelDims(m, bType.getShape(), shape))
        return failure();
      return walk(matmul.getB(), m, false);
    }
    if (auto transpose = dyn_cast<tosa::TransposeOp>(def))
      return walk(transpose.getInput1(),
                  throughTranspose(m, transpose.getPerms()), false);
    if (auto reshape = dyn_cast<tosa::ReshapeOp>(def)) {
      auto inType = dyn_cast<RankedTensorType>(reshape.getInput1().getType());
      if (!inType)
        return failure();
      FailureOr<ChannelMap> in = throughReshape(m, inType.getShape(), shape);
      if (failed(in))
        return failure();
      return walk(reshape.getInput1(), *in, false);
    }
    if (auto mul = dyn_cast<tosa::MulOp>(def)) {
      // One factor is the chain; the other does not depend on it (every
      // value of the chain has one reader).
      for (Value operand : {mul.getInput1(), mul.getInput2()}) {
        auto opType = dyn_cast<RankedTensorType>(operand.getType());
        if (!opType || !sameChannelDims(m, opType.getShape(), shape))
          continue;
        FailureOr<ChannelTrace> trace = walk(operand, m, false);
        if (succeeded(trace))
          return trace;
      }
      return failure();
    }
    if (auto add = dyn_cast<tosa::AddOp>(def)) {
      for (unsigned i = 0; i < 2; ++i) {
        Value bias = add->getOperand(i), chain = add->getOperand(1 - i);
        std::optional<std::vector<float>> values = constantFloats(bias);
        auto biasType = dyn_cast<RankedTensorType>(bias.getType());
        auto chainType = dyn_cast<RankedTensorType>(chain.getType());
        if (!values || !biasType || !biasType.hasStaticShape() || !chainType ||
            !sameChannelDims(m, biasType.getShape(), shape) ||
            !sameChannelDims(m, chainType.getShape(), shape))
          continue;
        FailureOr<std::vector<int64_t>> channels =
            channelsOfElements(m, biasType.getShape());
        if (failed(channels))
          return failure();
        FailureOr<ChannelTrace> trace = walk(chain, m, false);
        if (failed(trace))
          return failure();
        trace->biases.push_back({add, i, std::move(*values), *channels});
        return trace;
      }
      return failure();
    }
    return failure();
  }
};

} // namespace

FailureOr<ChannelTrace>
traceChannels(Value x, ArrayRef<Operation *> consumers,
              llvm::function_ref<bool(tosa::MatMulOp)> isProducer) {
  auto type = dyn_cast<RankedTensorType>(x.getType());
  if (!type || type.getRank() < 1 ||
      ShapedType::isDynamic(type.getShape().back()))
    return failure();
  llvm::SmallPtrSet<Operation *, 4> readers(consumers.begin(), consumers.end());
  if (llvm::any_of(x.getUsers(),
                   [&](Operation *u) { return !readers.contains(u); }))
    return failure();
  int64_t k = type.getShape().back();
  ChannelMap m(k, type.getRank());
  for (int64_t c = 0; c < k; ++c)
    m.at(c, type.getRank() - 1) = c;
  Tracer tracer{isProducer};
  return tracer.walk(x, std::move(m), true);
}

void scaleChainBiases(OpBuilder &b, const ChannelTrace &trace,
                      ArrayRef<float> s, StringRef name) {
  for (const ChainBias &bias : trace.biases) {
    std::vector<float> scaled(bias.values);
    for (size_t e = 0; e < scaled.size(); ++e)
      scaled[e] /= s[bias.channel[e]];
    Value old = bias.add->getOperand(bias.operand);
    auto type = cast<RankedTensorType>(old.getType());
    b.setInsertionPoint(bias.add);
    Value c = createResourceConst<float>(b, bias.add->getLoc(), name, scaled,
                                         type.getShape(), b.getF32Type());
    bias.add->setOperand(bias.operand, c);
    eraseIfDead(old);
  }
}

} // namespace qforge
