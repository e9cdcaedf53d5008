//===- WarpReductions.cpp - Parallel-loop reductions across a warp -*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// convert-linalg-to-parallel-loops turns each linalg reduction (the row sums
// of RMSNorm and LayerNorm, softmax's running maximum and sum, the products of
// attention) into a parallel loop over the outputs around a sequential loop
// that loads the output, combines one term into it and stores it back:
//
//   scf.parallel (i) { scf.for k { t = f(i, k); a = load out[i];
//                                  store a + t, out[i] } }
//
// On the GPU that is one thread per output walking the whole reduction
// through memory. This pass gives each output of a long reduction to a warp:
// a new innermost parallel dimension of 32 lanes (qf-tile-loops-for-gpu gives
// it thread x, so a warp is the 32 lanes of one output), lane l combining
// terms l, l + 32, ... in a register from the operation's identity, a
// butterfly of gpu.shuffle xor combining the lanes, and lane 0 combining the
// total into out[i]. A short reduction (static extent below min-warp-extent),
// or one whose terms are not read along the innermost dimension (a matmul's
// [K, N] operand: lanes would read 32 cache lines where threads of
// neighbouring outputs read one), keeps one thread per output but accumulates
// in a register, in the original order. With `emulate` the lanes run in turn on
// the CPU and the butterfly works on a vector of the 32 lane values, so that a
// CPU module computes the same sums in the same order as the CUDA kernels.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "qforge/Codegen/WarpGemvKernel.h"

#include "mlir/IR/IRMapping.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

namespace qforge {
#define GEN_PASS_DEF_WARPREDUCTIONSPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;
using namespace qforge;

namespace {
/// A parallel loop's reduction: `store combiner(load out[idx], term),
/// out[idx]` in `loop`, the only store of its body, at indices fixed in it.
struct Reduction {
  scf::ParallelOp parallel;
  scf::ForOp loop;
  memref::LoadOp accLoad;
  Operation *combiner;
  memref::StoreOp store;
};

/// The value x with combiner(identity, x) == x, for the combiners the
/// warp form takes.
std::optional<APFloat> identityOf(Operation *combiner) {
  auto type = cast<FloatType>(combiner->getResult(0).getType());
  const llvm::fltSemantics &sem = type.getFloatSemantics();
  if (isa<arith::AddFOp>(combiner))
    return APFloat::getZero(sem, /*Negative=*/true);
  if (isa<arith::MulFOp>(combiner))
    return APFloat::getOne(sem);
  if (isa<arith::MaximumFOp, arith::MaxNumFOp>(combiner))
    return APFloat::getInf(sem, /*Negative=*/true);
  if (isa<arith::MinimumFOp, arith::MinNumFOp>(combiner))
    return APFloat::getInf(sem, /*Negative=*/false);
  return std::nullopt;
}

std::optional<Reduction> matchReduction(scf::ParallelOp parallel) {
  if (!parallel.getInitVals().empty())
    return std::nullopt;
  Reduction r;
  r.parallel = parallel;
  for (Operation &op : parallel.getBody()->without_terminator()) {
    if (auto loop = dyn_cast<scf::ForOp>(op)) {
      if (r.loop)
        return std::nullopt;
      r.loop = loop;
    } else if (!isMemoryEffectFree(&op)) {
      return std::nullopt;
    }
  }
  if (!r.loop || r.loop.getNumResults() != 0)
    return std::nullopt;
  for (Operation &op : r.loop.getBody()->without_terminator()) {
    if (auto store = dyn_cast<memref::StoreOp>(op)) {
      if (r.store)
        return std::nullopt;
      r.store = store;
    } else if (!isa<memref::LoadOp>(op) && !isMemoryEffectFree(&op)) {
      return std::nullopt;
    }
  }
  if (!r.store || !r.store.getValueToStore().getType().isF32())
    return std::nullopt;
  Value out = r.store.getMemRef();
  if (!llvm::all_of(r.store.getIndices(),
                    [&](Value v) { return r.loop.isDefinedOutsideOfLoop(v); }))
    return std::nullopt;
  r.combiner = r.store.getValueToStore().getDefiningOp();
  if (!r.combiner || r.combiner->getBlock() != r.loop.getBody() ||
      r.combiner->getNumOperands() != 2 || !r.combiner->hasOneUse() ||
      !identityOf(r.combiner))
    return std::nullopt;
  for (Value operand : r.combiner->getOperands()) {
    auto load = operand.getDefiningOp<memref::LoadOp>();
    if (load && load.getMemRef() == out &&
        load.getIndices() == r.store.getIndices() && load->hasOneUse())
      r.accLoad = load;
  }
  if (!r.accLoad || r.combiner->getOperand(0) == r.combiner->getOperand(1))
    return std::nullopt;
  // The terms must not read the output.
  WalkResult reads = r.loop.getBody()->walk([&](memref::LoadOp load) {
    return load != r.accLoad && load.getMemRef() == out
               ? WalkResult::interrupt()
               : WalkResult::advance();
  });
  if (reads.wasInterrupted())
    return std::nullopt;
  return r;
}

/// Whether the terms are read along the innermost dimension: every load that
/// moves with the loop moves in its last index only. Then a warp's lanes read
/// consecutive addresses. Otherwise (the [K, N] operand of a matmul, V in
/// attention's weighted sum) the lanes would each read their own cache line,
/// while threads for neighbouring outputs, one per output, read neighbours.
bool readsAlongInnermost(Reduction r) {
  auto moves = [&](Value v) { return !r.loop.isDefinedOutsideOfLoop(v); };
  WalkResult walk = r.loop.getBody()->walk([&](memref::LoadOp load) {
    if (load == r.accLoad)
      return WalkResult::advance();
    auto indices = load.getIndices();
    if (!indices.empty() && llvm::any_of(indices.drop_back(), moves))
      return WalkResult::interrupt();
    return WalkResult::advance();
  });
  return !walk.wasInterrupted();
}

/// A new op of the combiner's kind (and attributes) on `lhs` and `rhs`, in
/// the combiner's operand order: `acc` takes the accumulator's place.
Value combine(OpBuilder &b, Reduction r, Value acc, Value term) {
  bool accFirst = r.combiner->getOperand(0) == r.accLoad.getResult();
  OperationState state(r.combiner->getLoc(), r.combiner->getName());
  state.addOperands(accFirst ? ValueRange{acc, term} : ValueRange{term, acc});
  state.addTypes(acc.getType());
  state.addAttributes(r.combiner->getAttrs());
  return b.create(state)->getResult(0);
}

/// Clones the pure ops of the parallel body (the index arithmetic the loop
/// uses) into the new body, mapping the old induction variables.
void cloneParallelPrologue(OpBuilder &b, Reduction r, IRMapping &map) {
  for (Operation &op : r.parallel.getBody()->without_terminator())
    if (&op != r.loop.getOperation())
      b.clone(op, map);
}

/// The loop over terms lb + start*step, lb + (start+stride)*step, ...
/// combined in a register from `init`; returns the combined value.
Value emitTermLoop(OpBuilder &b, Location loc, Reduction r, IRMapping &map,
                   Value start, int64_t stride, Value init) {
  Value lb = map.lookupOrDefault(r.loop.getLowerBound());
  Value ub = map.lookupOrDefault(r.loop.getUpperBound());
  Value step = map.lookupOrDefault(r.loop.getStep());
  Value first = lb;
  if (start)
    first = arith::AddIOp::create(b, loc, lb,
                                  arith::MulIOp::create(b, loc, start, step));
  Value strideStep = step;
  if (stride != 1)
    strideStep = arith::MulIOp::create(
        b, loc, step, arith::ConstantIndexOp::create(b, loc, stride));
  auto loop = scf::ForOp::create(
      b, loc, first, ub, strideStep, ValueRange{init},
      [&](OpBuilder &fb, Location, Value k, ValueRange acc) {
        map.map(r.loop.getInductionVar(), k);
        map.map(r.accLoad.getResult(), acc[0]);
        for (Operation &op : r.loop.getBody()->without_terminator())
          if (&op != r.accLoad.getOperation() && &op != r.store.getOperation())
            fb.clone(op, map);
        scf::YieldOp::create(fb, loc, map.lookup(r.combiner->getResult(0)));
      });
  return loop.getResult(0);
}

/// The output element's indices in the new loop.
SmallVector<Value> outputIndices(Reduction r, IRMapping &map) {
  SmallVector<Value> indices;
  for (Value v : r.store.getIndices())
    indices.push_back(map.lookupOrDefault(v));
  return indices;
}

/// A parallel loop over the same outputs as the reduction's, its prologue
/// cloned, with `body` then the terminator.
void emitOverOutputs(
    Reduction r, const std::function<void(OpBuilder &, IRMapping &)> &body) {
  OpBuilder b(r.parallel);
  scf::ParallelOp::create(b, r.parallel.getLoc(), r.parallel.getLowerBound(),
                          r.parallel.getUpperBound(), r.parallel.getStep(),
                          [&](OpBuilder &pb, Location loc, ValueRange ivs) {
                            IRMapping map;
                            map.map(r.parallel.getInductionVars(), ivs);
                            cloneParallelPrologue(pb, r, map);
                            body(pb, map);
                            scf::ReduceOp::create(pb, loc);
                          });
}

/// out[idx] = combine(out[idx], total).
void emitCombineIntoOutput(OpBuilder &b, Location loc, Reduction r,
                           IRMapping &map, Value total) {
  SmallVector<Value> indices = outputIndices(r, map);
  Value out = map.lookupOrDefault(r.store.getMemRef());
  Value acc = memref::LoadOp::create(b, loc, out, indices);
  memref::StoreOp::create(b, loc, combine(b, r, acc, total), out, indices);
}

struct WarpReductionsPass
    : public qforge::impl::WarpReductionsPassBase<WarpReductionsPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<Reduction> reductions;
    getOperation().walk([&](scf::ParallelOp parallel) {
      if (parallel->getParentOfType<scf::ParallelOp>() ||
          parallel->getParentOfType<gpu::LaunchOp>())
        return;
      if (std::optional<Reduction> r = matchReduction(parallel))
        reductions.push_back(*r);
    });
    for (Reduction r : reductions) {
      std::optional<int64_t> extent = constantTripCount(r.loop);
      if ((extent && *extent < minWarpExtent) || !readsAlongInnermost(r))
        accumulateInRegister(r);
      else if (emulate)
        emitEmulatedWarps(r);
      else
        emitWarps(r);
      r.parallel.erase();
    }
  }

  static std::optional<int64_t> constantTripCount(scf::ForOp loop) {
    std::optional<llvm::APInt> n = loop.getStaticTripCount();
    if (!n)
      return std::nullopt;
    return n->getSExtValue();
  }

  /// The same parallel loop, with the accumulator in a register.
  static void accumulateInRegister(Reduction r) {
    Location loc = r.parallel.getLoc();
    emitOverOutputs(r, [&](OpBuilder &b, IRMapping &map) {
      SmallVector<Value> indices = outputIndices(r, map);
      Value out = map.lookupOrDefault(r.store.getMemRef());
      Value init = memref::LoadOp::create(b, loc, out, indices);
      Value total = emitTermLoop(b, loc, r, map, Value(), 1, init);
      memref::StoreOp::create(b, loc, total, out, indices);
    });
  }

  static Value identity(OpBuilder &b, Location loc, Reduction r) {
    auto type = cast<FloatType>(r.combiner->getResult(0).getType());
    return arith::ConstantFloatOp::create(b, loc, type,
                                          *identityOf(r.combiner));
  }

  /// GPU form: a lane dimension of 32 innermost, lanes combined with shuffles.
  static void emitWarps(Reduction r) {
    OpBuilder b(r.parallel);
    Location loc = r.parallel.getLoc();
    auto c = [&](OpBuilder &cb, int64_t v) -> Value {
      return arith::ConstantIndexOp::create(cb, loc, v);
    };
    SmallVector<Value> lbs(r.parallel.getLowerBound()),
        ubs(r.parallel.getUpperBound()), steps(r.parallel.getStep());
    lbs.push_back(c(b, 0));
    ubs.push_back(c(b, codegen::kWarpLanes));
    steps.push_back(c(b, 1));
    scf::ParallelOp::create(
        b, loc, lbs, ubs, steps, [&](OpBuilder &pb, Location, ValueRange ivs) {
          IRMapping map;
          map.map(r.parallel.getInductionVars(), ivs.drop_back());
          Value lane = ivs.back();
          cloneParallelPrologue(pb, r, map);
          Value partial = emitTermLoop(
              pb, loc, r, map, lane, codegen::kWarpLanes, identity(pb, loc, r));
          Value total = codegen::emitButterfly(
              pb, loc, partial,
              [&](Value v, int32_t offset) {
                return codegen::emitWarpShuffleXor(pb, loc, v, offset);
              },
              [&](Value v, Value other) { return combine(pb, r, v, other); });
          Value first = arith::CmpIOp::create(pb, loc, arith::CmpIPredicate::eq,
                                              lane, c(pb, 0));
          auto store = scf::IfOp::create(pb, loc, first, false);
          OpBuilder tb = OpBuilder::atBlockBegin(store.thenBlock());
          emitCombineIntoOutput(tb, loc, r, map, total);
          scf::ReduceOp::create(pb, loc);
        });
  }

  /// CPU form of the same arithmetic: lanes 0..31 in turn into a buffer, the
  /// butterfly over a vector<32xf32> of their values.
  static void emitEmulatedWarps(Reduction r) {
    Location loc = r.parallel.getLoc();
    int64_t lanes = codegen::kWarpLanes;
    auto c = [&](OpBuilder &cb, int64_t v) -> Value {
      return arith::ConstantIndexOp::create(cb, loc, v);
    };
    emitOverOutputs(r, [&](OpBuilder &pb, IRMapping &map) {
      Type f32 = pb.getF32Type();
      Value parts =
          memref::AllocOp::create(pb, loc, MemRefType::get({lanes}, f32));
      scf::ForOp::create(
          pb, loc, c(pb, 0), c(pb, lanes), c(pb, 1), ValueRange{},
          [&](OpBuilder &lb, Location, Value lane, ValueRange) {
            IRMapping laneMap = map;
            Value partial = emitTermLoop(lb, loc, r, laneMap, lane, lanes,
                                         identity(lb, loc, r));
            memref::StoreOp::create(lb, loc, partial, parts, lane);
            scf::YieldOp::create(lb, loc);
          });
      Value v = vector::LoadOp::create(pb, loc, VectorType::get({lanes}, f32),
                                       parts, c(pb, 0));
      memref::DeallocOp::create(pb, loc, parts);
      Value all = codegen::emitButterfly(
          pb, loc, v,
          [&](Value x, int32_t offset) {
            return codegen::emitLaneVectorShuffleXor(pb, loc, x, offset);
          },
          [&](Value x, Value other) { return combine(pb, r, x, other); });
      Value total = vector::ExtractOp::create(pb, loc, all, 0);
      emitCombineIntoOutput(pb, loc, r, map, total);
    });
  }
};
} // namespace
