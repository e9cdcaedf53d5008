//===- FusedMatmulKernel.cpp - Kernel bodies for qf.fused_matmul -*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "qforge/Codegen/FusedMatmulKernel.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"

#include <algorithm>
#include <numeric>

using namespace mlir;

namespace qforge::codegen {

SmallVector<Value> FusedMatmulBuffers::all() const {
  SmallVector<Value> out;
  for (Value v : {x, codes, scales, zeroPoints, lut, rowPtr, colIdx, values,
                  bias, this->out})
    if (v)
      out.push_back(v);
  return out;
}

FusedMatmulBuffers FusedMatmulBuffers::rebind(ValueRange newValues) const {
  FusedMatmulBuffers r = *this;
  unsigned i = 0;
  for (Value *v : {&r.x, &r.codes, &r.scales, &r.zeroPoints, &r.lut, &r.rowPtr,
                   &r.colIdx, &r.values, &r.bias, &r.out})
    if (*v)
      *v = newValues[i++];
  return r;
}

/// Views a contiguous memref [..., D] as [M, D].
static Value flattenTo2D(OpBuilder &b, Location loc, Value v) {
  auto type = cast<MemRefType>(v.getType());
  if (type.getRank() == 2)
    return v;
  if (type.getRank() == 1)
    return memref::ExpandShapeOp::create(
        b, loc, SmallVector<int64_t>{1, type.getDimSize(0)}, v,
        SmallVector<ReassociationIndices>{{0, 1}});
  ReassociationIndices lead;
  for (int64_t i = 0; i + 1 < type.getRank(); ++i)
    lead.push_back(i);
  return memref::CollapseShapeOp::create(
      b, loc, v, SmallVector<ReassociationIndices>{lead, {type.getRank() - 1}});
}

FailureOr<SmallVector<qf::FusedMatmulOp>>
collectBufferizedFusedMatmuls(Operation *root, StringRef loweringTo) {
  SmallVector<qf::FusedMatmulOp> ops;
  WalkResult walk = root->walk([&](qf::FusedMatmulOp op) {
    if (op.getResult()) {
      op.emitOpError("must be bufferized before lowering to ") << loweringTo;
      return WalkResult::interrupt();
    }
    ops.push_back(op);
    return WalkResult::advance();
  });
  if (walk.wasInterrupted())
    return failure();
  return ops;
}

FusedMatmulBuffers getFlattenedBuffers(OpBuilder &b, qf::FusedMatmulOp op) {
  Location loc = op.getLoc();
  b.setInsertionPoint(op);
  FusedMatmulBuffers buf;
  buf.scheme = op.getScheme();
  buf.rows = op.getN();
  buf.cols = op.getK();
  buf.x = flattenTo2D(b, loc, op.getX());
  buf.out = flattenTo2D(b, loc, op.getInit());
  buf.codes = op.getCodes();
  buf.scales = op.getScales();
  buf.zeroPoints = op.getZeroPoints();
  buf.lut = op.getLut();
  buf.rowPtr = op.getRowPtr();
  buf.colIdx = op.getColIdx();
  buf.values = op.getValues();
  buf.bias = op.getBias();
  return buf;
}

/// a * c + acc, contractible into one fused multiply-add.
static Value fmaContract(OpBuilder &b, Location loc, Value a, Value c,
                         Value acc) {
  auto fm = arith::FastMathFlags::contract;
  Value p = arith::MulFOp::create(b, loc, a, c, fm);
  return arith::AddFOp::create(b, loc, p, acc, fm);
}

Value emitUnitCode(OpBuilder &b, Location loc, ArrayRef<Value> words, int64_t j,
                   unsigned bits) {
  auto i32 = [&](int64_t v) {
    return arith::ConstantIntOp::create(b, loc, b.getI32Type(), v);
  };
  // Code j: bits [j*bits, (j+1)*bits) of the unit, possibly continuing into
  // the next word.
  int64_t q = j * bits / 32, r = j * bits % 32;
  Value v =
      r ? Value(arith::ShRUIOp::create(b, loc, words[q], i32(r))) : words[q];
  if (r + bits > 32)
    v = arith::OrIOp::create(
        b, loc, v, arith::ShLIOp::create(b, loc, words[q + 1], i32(32 - r)));
  return arith::AndIOp::create(b, loc, v, i32((1 << bits) - 1));
}

namespace {
/// Small helper that keeps the builder and location at hand.
struct Emitter {
  OpBuilder &b;
  Location loc;
  Type f;

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, loc, v); }
  Value i32(int64_t v) {
    return arith::ConstantIntOp::create(b, loc, b.getI32Type(), v);
  }
  Value i64(int64_t v) {
    return arith::ConstantIntOp::create(b, loc, b.getI64Type(), v);
  }
  Value flt(double v) {
    return arith::ConstantOp::create(b, loc,
                                     cast<TypedAttr>(b.getFloatAttr(f, v)));
  }
  Value load(Value mem, ValueRange ix) {
    return memref::LoadOp::create(b, loc, mem, ix);
  }
  /// Loads a float and converts it to the accumulation type.
  Value loadF(Value mem, ValueRange ix) {
    Value v = load(mem, ix);
    return v.getType() == f ? v : Value(arith::ExtFOp::create(b, loc, f, v));
  }
  Value toF(Value intValue) {
    return arith::UIToFPOp::create(b, loc, f, intValue);
  }
  Value add(Value a, Value c) { return arith::AddFOp::create(b, loc, a, c); }
  Value mul(Value a, Value c) { return arith::MulFOp::create(b, loc, a, c); }

  /// The unsigned code of column k in packed row n (an i32).
  Value code(Value codes, Value n, Value k, unsigned bits, int64_t words) {
    Value bitPos = arith::MulIOp::create(b, loc, k, idx(bits));
    Value word = arith::DivUIOp::create(b, loc, bitPos, idx(32));
    Value shift = arith::RemUIOp::create(b, loc, bitPos, idx(32));
    Value lo = load(codes, {n, word});
    Value mask;
    if (32 % bits == 0) {
      // Codes never straddle a word.
      Value sh = arith::IndexCastOp::create(b, loc, b.getI32Type(), shift);
      Value v = arith::ShRUIOp::create(b, loc, lo, sh);
      return arith::AndIOp::create(b, loc, v, i32((1 << bits) - 1));
    }
    // Straddling codes: read the next word too (clamped; its bits are masked
    // off when the code does not reach it) and shift the 64-bit pair.
    Value next = arith::AddIOp::create(b, loc, word, idx(1));
    next = arith::MinUIOp::create(b, loc, next, idx(words - 1));
    Value hi = load(codes, {n, next});
    Value lo64 = arith::ExtUIOp::create(b, loc, b.getI64Type(), lo);
    Value hi64 = arith::ExtUIOp::create(b, loc, b.getI64Type(), hi);
    hi64 = arith::ShLIOp::create(b, loc, hi64, i64(32));
    Value pair = arith::OrIOp::create(b, loc, lo64, hi64);
    Value sh = arith::IndexCastOp::create(b, loc, b.getI64Type(), shift);
    Value v = arith::ShRUIOp::create(b, loc, pair, sh);
    v = arith::TruncIOp::create(b, loc, b.getI32Type(), v);
    return arith::AndIOp::create(b, loc, v, i32((1 << bits) - 1));
  }
};
} // namespace

void emitOutputElement(OpBuilder &b, Location loc,
                       const FusedMatmulBuffers &buf, Value m, Value n) {
  Type f = cast<MemRefType>(buf.out.getType()).getElementType();
  Emitter e{b, loc, f};
  qf::SchemeAttr s = buf.scheme;
  unsigned bits = s.getBits();
  int64_t K = buf.cols;
  int64_t words = s.wordsPerRow(K);
  int64_t groupSize = s.getGroupSize() > 0 ? s.getGroupSize() : K;
  int64_t groups = s.isCodebook() ? 1 : s.groupsPerRow(K);
  Value scaleRow = s.isPerTensor() ? e.idx(0) : n;
  // Codes are read a unit at a time: the fewest whole words that hold whole
  // codes (one word of 32/bits codes for 2, 4 and 8 bits; three words of 32
  // codes for 3 bits), when every group starts on a unit boundary.
  int64_t unitWords = bits / std::gcd<int64_t>(bits, 32);
  int64_t perUnit = unitWords * 32 / bits;
  bool unitWise = groups == 1 || groupSize % perUnit == 0;
  // Independent accumulators, so the products of a unit do not wait on each
  // other.
  int64_t numAcc = std::min<int64_t>(perUnit, 8);

  // acc = sum over groups of scale_g * sum_k x[m,k] * (code - zero_g); a
  // codebook row is one group whose values come from the table.
  auto groupLoop = scf::ForOp::create(
      b, loc, e.idx(0), e.idx(groups), e.idx(1), ValueRange{e.flt(0.0)},
      [&](OpBuilder &gb, Location gl, Value g, ValueRange gIter) {
        Emitter ge{gb, gl, f};
        Value kBegin = arith::MulIOp::create(gb, gl, g, ge.idx(groupSize));
        Value kEnd = arith::AddIOp::create(gb, gl, kBegin, ge.idx(groupSize));
        kEnd = arith::MinUIOp::create(gb, gl, kEnd, ge.idx(K));
        Value zero;
        if (s.isAffine()) {
          if (s.hasZeroPoints()) {
            Value z = ge.load(buf.zeroPoints, {scaleRow, g});
            zero = ge.toF(arith::ExtUIOp::create(gb, gl, gb.getI32Type(), z));
          } else {
            zero = ge.flt(double(1u << (bits - 1)));
          }
        }
        // The value a code stands for: a table entry, or code - zero.
        auto decode = [&](OpBuilder &db, Location dl, Value code) -> Value {
          Emitter de{db, dl, f};
          if (s.isCodebook()) {
            Value ci =
                arith::IndexCastUIOp::create(db, dl, db.getIndexType(), code);
            return de.loadF(buf.lut, {n, ci});
          }
          return arith::SubFOp::create(db, dl, de.toF(code), zero);
        };
        Value acc0 = ge.flt(0.0);
        Value kTail = kBegin;
        if (unitWise) {
          Value uBegin =
              arith::DivUIOp::create(gb, gl, kBegin, ge.idx(perUnit));
          Value uEnd = arith::DivUIOp::create(gb, gl, kEnd, ge.idx(perUnit));
          SmallVector<Value> zeros(numAcc, acc0);
          auto unitLoop = scf::ForOp::create(
              gb, gl, uBegin, uEnd, ge.idx(1), zeros,
              [&](OpBuilder &ub, Location ul, Value u, ValueRange uIter) {
                Emitter ue{ub, ul, f};
                Value w0 = arith::MulIOp::create(ub, ul, u, ue.idx(unitWords));
                SmallVector<Value> words;
                for (int64_t q = 0; q < unitWords; ++q)
                  words.push_back(ue.load(
                      buf.codes,
                      {n, arith::AddIOp::create(ub, ul, w0, ue.idx(q))}));
                Value kBase = arith::MulIOp::create(ub, ul, u, ue.idx(perUnit));
                SmallVector<Value> accs(uIter.begin(), uIter.end());
                for (int64_t j = 0; j < perUnit; ++j) {
                  Value code = emitUnitCode(ub, ul, words, j, bits);
                  Value k = arith::AddIOp::create(ub, ul, kBase, ue.idx(j));
                  Value &acc = accs[j % numAcc];
                  // One statement per op: the IR order must not depend on the
                  // compiler's order of evaluating arguments.
                  Value weight = decode(ub, ul, code);
                  Value xv = ue.loadF(buf.x, {m, k});
                  acc = fmaContract(ub, ul, xv, weight, acc);
                }
                scf::YieldOp::create(ub, ul, accs);
              });
          SmallVector<Value> partial(unitLoop.getResults());
          while (partial.size() > 1) {
            SmallVector<Value> next;
            for (size_t i = 0; i + 1 < partial.size(); i += 2)
              next.push_back(ge.add(partial[i], partial[i + 1]));
            if (partial.size() % 2)
              next.push_back(partial.back());
            partial = std::move(next);
          }
          acc0 = partial.front();
          kTail = arith::MulIOp::create(gb, gl, uEnd, ge.idx(perUnit));
        }
        // Code by code: the tail of a partial unit, or groups that do not start
        // on unit boundaries.
        auto kLoop = scf::ForOp::create(
            gb, gl, kTail, kEnd, ge.idx(1), ValueRange{acc0},
            [&](OpBuilder &kb, Location kl, Value k, ValueRange kIter) {
              Emitter ke{kb, kl, f};
              Value code = ke.code(buf.codes, n, k, bits, words);
              Value xv = ke.loadF(buf.x, {m, k});
              Value acc =
                  fmaContract(kb, kl, xv, decode(kb, kl, code), kIter[0]);
              scf::YieldOp::create(kb, kl, acc);
            });
        Value part = kLoop.getResult(0);
        if (s.isAffine())
          part = ge.mul(ge.loadF(buf.scales, {scaleRow, g}), part);
        scf::YieldOp::create(gb, gl, ge.add(gIter[0], part));
      });
  Value acc = groupLoop.getResult(0);

  if (buf.rowPtr) {
    Value first = e.load(buf.rowPtr, {n});
    Value last =
        e.load(buf.rowPtr, {arith::AddIOp::create(b, loc, n, e.idx(1))});
    auto toIndex = [&](Value v) {
      return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
    };
    auto sparse = scf::ForOp::create(
        b, loc, toIndex(first), toIndex(last), e.idx(1), ValueRange{acc},
        [&](OpBuilder &sb, Location sl, Value j, ValueRange it) {
          Emitter se{sb, sl, f};
          Value col = arith::IndexCastOp::create(sb, sl, sb.getIndexType(),
                                                 se.load(buf.colIdx, {j}));
          Value value = se.loadF(buf.values, {j});
          Value xv = se.loadF(buf.x, {m, col});
          Value v = fmaContract(sb, sl, xv, value, it[0]);
          scf::YieldOp::create(sb, sl, v);
        });
    acc = sparse.getResult(0);
  }
  if (buf.bias)
    acc = e.add(acc, e.loadF(buf.bias, {n}));
  memref::StoreOp::create(b, loc, acc, buf.out, ValueRange{m, n});
}

} // namespace qforge::codegen
