//===- CPUKernels.cpp - Vectorized CPU kernels for qf.fused_matmul -*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "qforge/Codegen/CPUKernels.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/IR/ImplicitLocOpBuilder.h"

#include <algorithm>
#include <array>
#include <functional>

using namespace mlir;

namespace qforge::codegen {

/// Codes per lane unit: a unit is `bits` consecutive 32-bit words, which hold
/// exactly 32 codes for every width, straddling or not.
static constexpr int64_t kUnit = 32;
/// Input channels per decoded GEMM panel.
static constexpr int64_t kPanelK = 256;

bool canVectorizeFusedMatmul(const FusedMatmulBuffers &buf) {
  auto elem = [](Value v) {
    return cast<MemRefType>(v.getType()).getElementType();
  };
  if (!elem(buf.x).isF32() || !elem(buf.out).isF32())
    return false;
  for (Value v : {buf.codes, buf.scales, buf.zeroPoints, buf.lut})
    if (v && !cast<MemRefType>(v.getType()).getLayout().isIdentity())
      return false;
  qf::SchemeAttr s = buf.scheme;
  if (s.getBits() < 1 || s.getBits() > 8)
    return false;
  if (s.isCodebook())
    return true;
  return s.isPerTensor() || s.isPerChannel() ||
         (s.getGroupSize() > 0 && s.getGroupSize() % kUnit == 0);
}

namespace {

/// Builds the kernels of one fused matmul.
class KernelBuilder {
public:
  /// `buf.scheme` null: float weights, `buf.codes` the [K, N] matrix.
  KernelBuilder(OpBuilder &builder, Location loc, const FusedMatmulBuffers &buf,
                const CPUKernelOptions &options)
      : b(loc, builder), buf(buf), V(options.vectorWidth),
        gemvMaxRows(options.gemvMaxRows), s(buf.scheme),
        bits(s ? s.getBits() : 32), N(buf.rows), K(buf.cols),
        W(s ? s.wordsPerRow(K) : N),
        G(!s || s.isCodebook() ? 1 : s.groupsPerRow(K)),
        parallel(N * K >= options.parallelMinWeights),
        int8(s && options.int8Activations && s.isAffine() && V == 16 &&
             8 % s.getBits() == 0) {
    f32 = b.getF32Type();
    i32 = b.getI32Type();
    vf = VectorType::get({V}, f32);
    vi = VectorType::get({V}, i32);
    units = (K + kUnit - 1) / kUnit;
    blocks = (units + V - 1) / V;
    fullBlocks = std::min(W / (V * bits), blocks);
    groupSize = s && s.getGroupSize() > 0 ? s.getGroupSize() : K;
  }

  /// out[B, M, N] += x[B, M, K] · w[B, K, N] for 3-D f32 buffers of any
  /// (dynamic) shapes: attention's products. Threads over (batch, tile)
  /// when the product has at least `minWork` multiply-adds (known at run
  /// time only), else the same loops on one thread.
  void emitBatchedFloat(Value w, int64_t minWork) {
    const int64_t NT = tileCols();
    auto dim = [&](Value v, int64_t d) -> Value {
      return memref::DimOp::create(b, v, d);
    };
    Value batches = dim(buf.x, 0), m = dim(buf.x, 1), k = dim(buf.x, 2),
          n = dim(w, 2);
    Value tiles = arith::DivUIOp::create(b, add(n, idx(NT - 1)), idx(NT));
    auto tile = [&](Value bi, Value t) {
      Value n0 = mul(t, idx(NT));
      SmallVector<Value> masks = tileMasks(n0, n);
      tileProduct(m, k, n0, masks, bi, nullptr,
                  [&](Value kc0, Value kk, int64_t h) -> Value {
                    return vector::MaskedLoadOp::create(
                        b, vf, w,
                        ValueRange{bi, add(kc0, kk), add(n0, idx(h * V))},
                        masks[h], splatF(0.0));
                  });
    };
    Value work = mul(mul(batches, m), mul(k, n));
    Value big =
        arith::CmpIOp::create(b, arith::CmpIPredicate::uge, work, idx(minWork));
    auto branch =
        scf::IfOp::create(b, TypeRange{}, big, /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(branch.thenBlock()->getTerminator());
    scf::ParallelOp::create(
        b, b.getLoc(), ValueRange{idx(0), idx(0)}, ValueRange{batches, tiles},
        ValueRange{idx(1), idx(1)},
        [&](OpBuilder &ob, Location, ValueRange ivs) {
          OpBuilder::InsertionGuard inner(b);
          b.setInsertionPoint(ob.getInsertionBlock(), ob.getInsertionPoint());
          tile(ivs[0], ivs[1]);
        });
    b.setInsertionPoint(branch.elseBlock()->getTerminator());
    loop(idx(0), batches, idx(1), [&](Value bi) {
      loop(idx(0), tiles, idx(1), [&](Value t) { tile(bi, t); });
    });
  }

  /// out[M, N] += x[M, K] · weights[K, N] with float weights: up to
  /// gemvMaxRows rows by the streaming GEMV below, more through the GEMM
  /// micro-kernel reading the weights in place (rows of 2V columns).
  void emitFloat() {
    const int64_t NT = tileCols();
    Value m = memref::DimOp::create(b, buf.x, 0);
    Value weights = flatten(buf.codes);
    Value small = arith::CmpIOp::create(b, arith::CmpIPredicate::ule, m,
                                        idx(gemvMaxRows));
    auto branch = scf::IfOp::create(b, TypeRange{}, small,
                                    /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(branch.thenBlock()->getTerminator());
    emitFloatGemv(m, weights);
    b.setInsertionPoint(branch.elseBlock()->getTerminator());
    // As a BLAS packs B: per chunk of kPanelK input channels, the weights of
    // a group of tiles are copied into contiguous panels (reading each weight
    // row's segment of the group in one stream), then the micro-kernel
    // sweeps the rows over each panel while that chunk of x stays in cache.
    const int64_t tiles = (N + NT - 1) / NT, GT = floatGemmGroupTiles();
    const int64_t panelSize = kPanelK * NT;
    outerLoop(idx((tiles + GT - 1) / GT), [&](Value g) {
      Value t0 = mul(g, idx(GT));
      Value here = minU(idx(GT), arith::SubIOp::create(b, idx(tiles), t0));
      Value panels = allocStatic(GT * panelSize, f32);
      chunkLoop(idx(K), [&](Value kc0, Value kcLen) {
        loop(idx(0), kcLen, idx(1), [&](Value kk) {
          Value rowAt = mul(add(kc0, kk), idx(N));
          loop(idx(0), here, idx(1), [&](Value tt) {
            Value n0 = mul(add(t0, tt), idx(NT));
            SmallVector<Value> masks = tileMasks(n0);
            for (int64_t h = 0; h < NT / V; ++h) {
              Value row = vector::MaskedLoadOp::create(
                  b, vf, weights, ValueRange{add(rowAt, add(n0, idx(h * V)))},
                  masks[h], splatF(0.0));
              Value dst = add(mul(tt, idx(panelSize)),
                              add(mul(kk, idx(NT)), idx(h * V)));
              vector::StoreOp::create(b, row, panels, ValueRange{dst});
            }
          });
        });
        loop(idx(0), here, idx(1), [&](Value tt) {
          Value n0 = mul(add(t0, tt), idx(NT));
          Value base = mul(tt, idx(panelSize));
          rowBlocks(
              m, n0, kc0, kcLen, tileMasks(n0), {},
              [&](Value kk, int64_t h) -> Value {
                return vector::LoadOp::create(
                    b, vf, panels,
                    ValueRange{add(base, add(mul(kk, idx(NT)), idx(h * V)))});
              });
        });
      });
      memref::DeallocOp::create(b, panels);
    });
  }

  /// Tiles per group of the float GEMM: up to 8 (256 output channels share
  /// each chunk of x), while keeping at least 16 groups for the threads.
  int64_t floatGemmGroupTiles() const {
    const int64_t tiles = (N + tileCols() - 1) / tileCols();
    return std::clamp<int64_t>(tiles / 16, 1, 8);
  }

  /// The float GEMV: m (1 .. gemvMaxRows, one specialized body per count)
  /// rows of x times the [K, N] weights, read once in storage order, four
  /// weight rows at a time into every output vector. A large layer splits K
  /// into chunks of contiguous weight rows (threads), each summing into its
  /// own partial output, then adds the partials (split-K).
  void emitFloatGemv(Value m, Value weights) {
    const int64_t chunks =
        parallel ? std::clamp<int64_t>((K + 63) / 64, 1, 16) : 1;
    std::function<void(int64_t)> dispatch = [&](int64_t rows) {
      if (rows == gemvMaxRows)
        return floatGemvRows(rows, chunks, weights);
      Value is =
          arith::CmpIOp::create(b, arith::CmpIPredicate::eq, m, idx(rows));
      auto branch = scf::IfOp::create(b, TypeRange{}, is,
                                      /*withElseRegion=*/true);
      OpBuilder::InsertionGuard guard(b);
      b.setInsertionPoint(branch.thenBlock()->getTerminator());
      floatGemvRows(rows, chunks, weights);
      b.setInsertionPoint(branch.elseBlock()->getTerminator());
      dispatch(rows + 1);
    };
    dispatch(1);
  }

  void floatGemvRows(int64_t rows, int64_t chunks, Value weights) {
    const int64_t kPer = (K + chunks - 1) / chunks;
    const int64_t full = N / V, nPad = (N + V - 1) / V * V;
    Value tailMask;
    if (N % V)
      tailMask = vector::CreateMaskOp::create(
          b, VectorType::get({V}, b.getI1Type()), ValueRange{idx(N % V)});
    // Partial sums [chunks][rows][nPad] when K is split, else `out` itself.
    Value partial =
        chunks > 1 ? allocStatic(chunks * rows * nPad, f32) : Value();
    auto outVector = [&](int64_t i, Value v, Value value, bool masked) {
      SmallVector<Value> at{idx(i), mul(v, idx(V))};
      if (!masked && !value)
        return Value(vector::LoadOp::create(b, vf, buf.out, at));
      if (!masked) {
        vector::StoreOp::create(b, value, buf.out, at);
        return Value();
      }
      if (!value)
        return Value(vector::MaskedLoadOp::create(b, vf, buf.out, at, tailMask,
                                                  splatF(0.0)));
      vector::MaskedStoreOp::create(b, buf.out, at, tailMask, value);
      return Value();
    };
    outerLoop(idx(chunks), [&](Value c) {
      Value k0 = mul(c, idx(kPer));
      Value k1 = minU(add(k0, idx(kPer)), idx(K));
      auto part = [&](int64_t i, Value v) {
        return add(mul(add(mul(c, idx(rows)), idx(i)), idx(nPad)),
                   mul(v, idx(V)));
      };
      if (partial)
        loop(idx(0), idx(nPad / V), idx(1), [&](Value v) {
          for (int64_t i = 0; i < rows; ++i)
            vector::StoreOp::create(b, splatF(0.0), partial,
                                    ValueRange{part(i, v)});
        });
      // Weight rows kb .. kb+J into every output vector.
      auto step = [&](Value kb, int64_t J) {
        SmallVector<Value> xb;
        for (int64_t i = 0; i < rows; ++i)
          for (int64_t j = 0; j < J; ++j)
            xb.push_back(broadcast(
                vf, memref::LoadOp::create(
                        b, buf.x, ValueRange{idx(i), add(kb, idx(j))})));
        auto update = [&](Value v, bool masked) {
          SmallVector<Value> w;
          for (int64_t j = 0; j < J; ++j) {
            Value at = add(mul(add(kb, idx(j)), idx(N)), mul(v, idx(V)));
            w.push_back(masked ? Value(vector::MaskedLoadOp::create(
                                     b, vf, weights, ValueRange{at}, tailMask,
                                     splatF(0.0)))
                               : Value(vector::LoadOp::create(b, vf, weights,
                                                              ValueRange{at})));
          }
          for (int64_t i = 0; i < rows; ++i) {
            Value y = partial ? Value(vector::LoadOp::create(
                                    b, vf, partial, ValueRange{part(i, v)}))
                              : outVector(i, v, {}, masked);
            for (int64_t j = 0; j < J; ++j)
              y = fma(xb[i * J + j], w[j], y);
            if (partial)
              vector::StoreOp::create(b, y, partial, ValueRange{part(i, v)});
            else
              outVector(i, v, y, masked);
          }
        };
        loop(idx(0), idx(full), idx(1), [&](Value v) { update(v, false); });
        if (N % V)
          update(idx(full), true);
      };
      Value len = arith::SubIOp::create(b, k1, k0);
      Value k4 = add(k0, mul(arith::DivUIOp::create(b, len, idx(4)), idx(4)));
      loop(k0, k4, idx(4), [&](Value kb) { step(kb, 4); });
      loop(k4, k1, idx(1), [&](Value kb) { step(kb, 1); });
    });
    if (!partial)
      return;
    // out += the chunks' partial sums.
    auto reduce = [&](Value v, bool masked) {
      for (int64_t i = 0; i < rows; ++i) {
        Value y = outVector(i, v, {}, masked);
        for (int64_t c = 0; c < chunks; ++c)
          y = arith::AddFOp::create(
              b, y,
              vector::LoadOp::create(
                  b, vf, partial,
                  ValueRange{add(idx((c * rows + i) * nPad), mul(v, idx(V)))}));
        outVector(i, v, y, masked);
      }
    };
    loop(idx(0), idx(full), idx(1), [&](Value v) { reduce(v, false); });
    if (N % V)
      reduce(idx(full), true);
    memref::DeallocOp::create(b, partial);
  }

  void emit() {
    // Flat views of the weights, for gathers across rows.
    codes = flatten(buf.codes);
    if (buf.scales)
      scales = flatten(buf.scales);
    if (buf.zeroPoints)
      zeroPoints = flatten(buf.zeroPoints);
    if (buf.lut)
      lut = flatten(buf.lut);
    Value m = memref::DimOp::create(b, buf.x, 0);
    Value small = arith::CmpIOp::create(b, arith::CmpIPredicate::ule, m,
                                        idx(gemvMaxRows));
    auto branch = scf::IfOp::create(b, TypeRange{}, small,
                                    /*withElseRegion=*/true);
    OpBuilder::InsertionGuard guard(b);
    b.setInsertionPoint(branch.thenBlock()->getTerminator());
    withGatherableLut(!lutInRegister(), [&] {
      if (int8)
        emitGemvInt8(m);
      else
        emitGemv(m);
    });
    b.setInsertionPoint(branch.elseBlock()->getTerminator());
    withGatherableLut(true, [&] {
      if (int8)
        emitGemmInt8(m);
      else
        emitGemm(m);
    });
  }

  /// Runs `body` with `lut` an f32 copy of a table of another element type
  /// when `gathers` (the kernel gathers table entries): x86 has no 16-bit
  /// gather, and LLVM would split each into 16 scalar loads in every kernel.
  /// The copy costs one conversion per table entry per call, against
  /// ~K/16 lookups of each entry by each row of activations.
  void withGatherableLut(bool gathers, llvm::function_ref<void()> body) {
    Value stored = lut;
    if (!lut || !gathers ||
        cast<MemRefType>(lut.getType()).getElementType().isF32())
      return body();
    int64_t entries = N * (int64_t(1) << bits);
    Value copy = allocStatic(entries, f32);
    loop(idx(0), idx(entries), idx(1), [&](Value i) {
      memref::StoreOp::create(
          b, scalarToF32(memref::LoadOp::create(b, stored, ValueRange{i})),
          copy, ValueRange{i});
    });
    lut = copy;
    body();
    lut = stored;
    memref::DeallocOp::create(b, copy);
  }

private:
  ImplicitLocOpBuilder b;
  const FusedMatmulBuffers &buf;
  int64_t V, gemvMaxRows;
  qf::SchemeAttr s;
  unsigned bits;
  int64_t N, K, W, G;
  bool parallel, int8;
  int64_t units = 0, blocks = 0, fullBlocks = 0, groupSize = 0;
  Type f32, i32;
  VectorType vf, vi;
  Value codes, scales, zeroPoints, lut;

  //===--- small helpers --------------------------------------------------===//

  Value idx(int64_t v) { return arith::ConstantIndexOp::create(b, v); }
  Value add(Value x, Value y) { return arith::AddIOp::create(b, x, y); }
  Value mul(Value x, Value y) { return arith::MulIOp::create(b, x, y); }
  Value minU(Value x, Value y) { return arith::MinUIOp::create(b, x, y); }
  Value toI32(Value index) { return arith::IndexCastOp::create(b, i32, index); }
  Value splatI(int64_t v) {
    return arith::ConstantOp::create(
        b, DenseElementsAttr::get(vi, b.getI32IntegerAttr(int32_t(v))));
  }
  Value splatF(double v) {
    return arith::ConstantOp::create(
        b, DenseElementsAttr::get(vf, b.getF32FloatAttr(float(v))));
  }
  Value broadcast(VectorType t, Value scalar) {
    return vector::BroadcastOp::create(b, t, scalar);
  }
  /// <0, 1, ..., V-1> * step as i32.
  Value laneTimes(int64_t step) {
    SmallVector<int32_t> v;
    for (int64_t l = 0; l < V; ++l)
      v.push_back(int32_t(l * step));
    return arith::ConstantOp::create(b,
                                     DenseElementsAttr::get(vi, ArrayRef(v)));
  }
  Value allTrue(int64_t n) {
    auto t = VectorType::get({n}, b.getI1Type());
    return arith::ConstantOp::create(
        b, DenseElementsAttr::get(t, b.getBoolAttr(true)));
  }
  Value toF32(Value v) {
    auto t = cast<VectorType>(v.getType());
    if (t.getElementType().isF32())
      return v;
    return arith::ExtFOp::create(b, VectorType::get(t.getShape(), f32), v);
  }
  Value scalarToF32(Value v) {
    return v.getType().isF32() ? v : Value(arith::ExtFOp::create(b, f32, v));
  }
  Value fma(Value x, Value y, Value acc) {
    return vector::FMAOp::create(b, x, y, acc);
  }

  /// A contiguous identity-layout memref viewed as 1-D.
  Value flatten(Value v) {
    auto t = cast<MemRefType>(v.getType());
    if (t.getRank() == 1)
      return v;
    ReassociationIndices all;
    for (int64_t i = 0; i < t.getRank(); ++i)
      all.push_back(i);
    return memref::CollapseShapeOp::create(
        b, v, SmallVector<ReassociationIndices>{all});
  }

  /// Gathers `base[offset + index[l]]` for every lane (index: vector of i32).
  Value gather(Value base, Value offset, Value index) {
    Type et = cast<MemRefType>(base.getType()).getElementType();
    auto t = VectorType::get({V}, et);
    Value pass = arith::ConstantOp::create(
        b, DenseElementsAttr::get(t, b.getZeroAttr(et)));
    return vector::GatherOp::create(b, t, base, ValueRange{offset}, index,
                                    allTrue(V), pass);
  }

  /// A loop whose body returns the values it yields.
  SmallVector<Value>
  loop(Value lb, Value ub, Value step, ValueRange init,
       llvm::function_ref<SmallVector<Value>(Value, ValueRange)> body) {
    auto op = scf::ForOp::create(
        b, b.getLoc(), lb, ub, step, init,
        [&](OpBuilder &ob, Location, Value iv, ValueRange args) {
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPoint(ob.getInsertionBlock(), ob.getInsertionPoint());
          SmallVector<Value> next = body(iv, args);
          scf::YieldOp::create(b, next);
        });
    return SmallVector<Value>(op.getResults());
  }
  void loop(Value lb, Value ub, Value step,
            llvm::function_ref<void(Value)> body) {
    loop(lb, ub, step, {}, [&](Value iv, ValueRange) {
      body(iv);
      return SmallVector<Value>();
    });
  }
  /// The outer loop of a kernel: threads when the layer is large enough.
  void outerLoop(Value ub, llvm::function_ref<void(Value)> body) {
    if (!parallel)
      return loop(idx(0), ub, idx(1), body);
    scf::ParallelOp::create(
        b, b.getLoc(), ValueRange{idx(0)}, ValueRange{ub}, ValueRange{idx(1)},
        [&](OpBuilder &ob, Location, ValueRange ivs) {
          OpBuilder::InsertionGuard guard(b);
          b.setInsertionPoint(ob.getInsertionBlock(), ob.getInsertionPoint());
          body(ivs[0]);
        });
  }

  /// Code j (0..31) of every lane's unit, from the unit's words (one vector
  /// per word, lane = unit).
  Value unitCode(ArrayRef<Value> words, int64_t j) {
    int64_t q = j * bits / 32, r = j * bits % 32;
    Value v = words[q];
    if (r)
      v = arith::ShRUIOp::create(b, v, splatI(r));
    if (r + bits > 32)
      v = arith::OrIOp::create(
          b, v, arith::ShLIOp::create(b, words[q + 1], splatI(32 - r)));
    if (r + bits != 32)
      v = arith::AndIOp::create(b, v, splatI((1 << bits) - 1));
    return v;
  }
  /// Codes are below 2^8: the signed conversion is exact and one instruction
  /// on every x86 vector ISA.
  Value codeToF32(Value code) { return arith::SIToFPOp::create(b, vf, code); }

  /// The group of the unit that starts at input channel k0 (index), clamped
  /// to the row's groups (padding units past K).
  Value groupOf(Value k0) {
    return minU(arith::DivUIOp::create(b, k0, idx(groupSize)), idx(G - 1));
  }
  Value scaleRow(Value n) { return s.isPerTensor() ? idx(0) : n; }

  //===--- GEMV
  //-------------------------------------------------------------===//

  void emitGemv(Value m) {
    // Activations transposed to the lane order of the weights:
    // xt[((row*blocks + blk)*32 + j)*V + l] = x[row, (blk*V + l)*32 + j] (0
    // past K) and xs[(row*blocks + blk)*V + l] = the sum of that unit.
    Value xt = allocPerRow(m, f32, blocks * kUnit * V);
    Value xs = allocPerRow(m, f32, blocks * V);
    Value zero = arith::ConstantOp::create(b, b.getF32FloatAttr(0.0f));
    loop(idx(0), m, idx(1), [&](Value row) {
      loop(idx(0), idx(blocks), idx(1), [&](Value blk) {
        Value rb = add(mul(row, idx(blocks)), blk);
        loop(idx(0), idx(V), idx(1), [&](Value l) {
          Value k0 = mul(add(mul(blk, idx(V)), l), idx(kUnit));
          Value sum = loop(
              idx(0), idx(kUnit), idx(1), {zero},
              [&](Value j, ValueRange acc) -> SmallVector<Value> {
                Value k = add(k0, j);
                Value in = arith::CmpIOp::create(b, arith::CmpIPredicate::ult,
                                                 k, idx(K));
                Value v = memref::LoadOp::create(
                    b, buf.x, ValueRange{row, minU(k, idx(K - 1))});
                v = arith::SelectOp::create(b, in, v, zero);
                Value at = add(mul(add(mul(rb, idx(kUnit)), j), idx(V)), l);
                memref::StoreOp::create(b, v, xt, ValueRange{at});
                return {arith::AddFOp::create(b, acc[0], v)};
              })[0];
          memref::StoreOp::create(b, sum, xs,
                                  ValueRange{add(mul(rb, idx(V)), l)});
        });
      });
    });

    gemvRows(m, [&](Value n, Value row, Value blk, Value acc, bool masked) {
      return gemvBlock(n, row, blk, xt, xs, acc, masked);
    });
    memref::DeallocOp::create(b, xt);
    memref::DeallocOp::create(b, xs);
  }

  /// A heap buffer of `per` elements per activation row (m rows).
  Value allocPerRow(Value m, Type type, int64_t per) {
    return memref::AllocOp::create(
        b, MemRefType::get({ShapedType::kDynamic}, type),
        ValueRange{mul(m, idx(per))}, b.getI64IntegerAttr(64));
  }

  /// The GEMV's output loop: per output channel n (threads) and row, the
  /// lane sums of the full blocks and the masked last one from `block(n, row,
  /// blk, acc, masked)`, reduced, plus outliers and bias.
  void
  gemvRows(Value m,
           llvm::function_ref<Value(Value, Value, Value, Value, bool)> block) {
    outerLoop(idx(N), [&](Value n) {
      loop(idx(0), m, idx(1), [&](Value row) {
        Value acc = loop(idx(0), idx(fullBlocks), idx(1), {splatF(0.0)},
                         [&](Value blk, ValueRange a) -> SmallVector<Value> {
                           return {block(n, row, blk, a[0], /*masked=*/false)};
                         })[0];
        if (fullBlocks < blocks)
          acc = block(n, row, idx(fullBlocks), acc, /*masked=*/true);
        Value total = vector::ReductionOp::create(
            b, vector::CombiningKind::ADD, acc, arith::FastMathFlags::reassoc);
        total = addOutliersAndBias(n, row, total);
        memref::StoreOp::create(b, total, buf.out, ValueRange{row, n});
      });
    });
  }

  /// The packed words of block `blk` of row n, one vector per word of a unit
  /// (lane = unit). A masked block reads only the words the row has.
  SmallVector<Value> loadUnitWords(Value n, Value blk, bool masked) {
    int64_t blockWords = V * bits;
    Value wordOffset = mul(blk, idx(blockWords));
    Value base = add(mul(n, idx(W)), wordOffset);
    auto wt = VectorType::get({blockWords}, i32);
    Value words;
    if (masked) {
      Value avail = arith::SubIOp::create(b, idx(W), wordOffset);
      Value mask = vector::CreateMaskOp::create(
          b, VectorType::get({blockWords}, b.getI1Type()), ValueRange{avail});
      Value pass = arith::ConstantOp::create(
          b, DenseElementsAttr::get(wt, b.getI32IntegerAttr(0)));
      words = vector::MaskedLoadOp::create(b, wt, codes, ValueRange{base}, mask,
                                           pass);
    } else {
      words = vector::LoadOp::create(b, wt, codes, ValueRange{base});
    }
    // Word q of every unit: a lane-strided shuffle of the block.
    if (bits == 1)
      return {words};
    SmallVector<Value> w;
    for (unsigned q = 0; q < bits; ++q) {
      SmallVector<int64_t> pick;
      for (int64_t l = 0; l < V; ++l)
        pick.push_back(l * bits + q);
      w.push_back(vector::ShuffleOp::create(b, words, words, pick));
    }
    return w;
  }

  /// The scale and zero of every unit of block `blk` of row n (affine).
  std::pair<Value, Value> unitScaleZero(Value n, Value blk) {
    Value k0 = mul(blk, idx(V * kUnit));
    Value scale, zero;
    Value sRow = mul(scaleRow(n), idx(G));
    if (groupSize % (V * kUnit) == 0) {
      // The whole block is in one group: one scale for every lane.
      Value g = add(sRow, groupOf(k0));
      scale = broadcast(
          vf, scalarToF32(memref::LoadOp::create(b, scales, ValueRange{g})));
      if (zeroPoints) {
        Value z = memref::LoadOp::create(b, zeroPoints, ValueRange{g});
        z = arith::ExtUIOp::create(b, i32, z);
        zero = broadcast(vf, arith::SIToFPOp::create(b, f32, z));
      }
    } else if ((V * kUnit) % groupSize == 0) {
      // A few whole groups per block: one short contiguous load of their
      // scales, spread to the lanes by a constant shuffle (no gather).
      int64_t perBlock = V * kUnit / groupSize;
      Value first = arith::DivUIOp::create(b, k0, idx(groupSize));
      Value at = add(sRow, first);
      Value avail = arith::SubIOp::create(b, idx(G), first);
      SmallVector<int64_t> spread;
      for (int64_t l = 0; l < V; ++l)
        spread.push_back(l * kUnit / groupSize);
      auto few = [&](Value mem) {
        Type et = cast<MemRefType>(mem.getType()).getElementType();
        auto t = VectorType::get({perBlock}, et);
        Value mask = vector::CreateMaskOp::create(
            b, VectorType::get({perBlock}, b.getI1Type()), ValueRange{avail});
        Value pass = arith::ConstantOp::create(
            b, DenseElementsAttr::get(t, b.getZeroAttr(et)));
        Value v =
            vector::MaskedLoadOp::create(b, t, mem, ValueRange{at}, mask, pass);
        return Value(vector::ShuffleOp::create(b, v, v, spread));
      };
      scale = toF32(few(scales));
      if (zeroPoints) {
        Value z = arith::ExtUIOp::create(b, vi, few(zeroPoints));
        zero = arith::SIToFPOp::create(b, vf, z);
      }
    } else {
      Value unitStart =
          arith::AddIOp::create(b, broadcast(vi, toI32(k0)), laneTimes(kUnit));
      Value g = arith::DivUIOp::create(b, unitStart, splatI(groupSize));
      g = arith::MinUIOp::create(b, g, splatI(G - 1));
      scale = toF32(gather(scales, sRow, g));
      if (zeroPoints) {
        Value z = gather(zeroPoints, sRow, g);
        z = arith::ExtUIOp::create(b, vi, z);
        zero = arith::SIToFPOp::create(b, vf, z);
      }
    }
    if (!zero)
      zero = splatF(double(1u << (bits - 1)));
    return {scale, zero};
  }

  /// Whether a row's look-up table fits in one vector register, where a
  /// lane-wise permute (AVX-512 vpermps) reads it: 2^bits <= V. 16 lanes
  /// mean AVX-512 (preferredVectorWidth); with 8 the target may lack AVX2's
  /// permute, and the table is gathered from memory.
  bool lutInRegister() const {
    return s.isCodebook() && V == 16 && (int64_t(1) << bits) <= V;
  }

  /// Row n's look-up table as one f32 vector (lanes past 2^bits are 0).
  Value loadLutRegister(Value n) {
    int64_t entries = int64_t(1) << bits;
    Type et = cast<MemRefType>(lut.getType()).getElementType();
    auto t = VectorType::get({V}, et);
    Value pass = arith::ConstantOp::create(
        b, DenseElementsAttr::get(t, b.getZeroAttr(et)));
    Value mask = vector::CreateMaskOp::create(
        b, VectorType::get({V}, b.getI1Type()), ValueRange{idx(entries)});
    return toF32(vector::MaskedLoadOp::create(
        b, t, lut, ValueRange{mul(n, idx(entries))}, mask, pass));
  }

  /// table[code] per lane (codes < 2^bits <= V).
  Value lookupRegister(Value table, Value code) {
    return LLVM::CallIntrinsicOp::create(
               b, vf, b.getStringAttr("llvm.x86.avx512.permvar.sf.512"),
               ValueRange{table, code})
        .getResult(0);
  }

  /// One block of V units of row n: returns acc + this block's lane sums.
  Value gemvBlock(Value n, Value row, Value blk, Value xt, Value xs, Value acc,
                  bool masked) {
    SmallVector<Value> w = loadUnitWords(n, blk, masked);
    Value rb = add(mul(row, idx(blocks)), blk);
    Value xBase = mul(rb, idx(kUnit * V));
    Value lutRow = s.isCodebook() ? mul(n, idx(int64_t(1) << bits)) : Value();
    Value table = lutInRegister() ? loadLutRegister(n) : Value();
    constexpr int numPartial = 4;
    SmallVector<Value> part(numPartial, splatF(0.0));
    for (int64_t j = 0; j < kUnit; ++j) {
      Value code = unitCode(w, j);
      Value value = !s.isCodebook() ? codeToF32(code)
                    : table         ? lookupRegister(table, code)
                                    : toF32(gather(lut, lutRow, code));
      Value xv =
          vector::LoadOp::create(b, vf, xt, ValueRange{add(xBase, idx(j * V))});
      part[j % numPartial] = fma(value, xv, part[j % numPartial]);
    }
    Value sum =
        arith::AddFOp::create(b, arith::AddFOp::create(b, part[0], part[1]),
                              arith::AddFOp::create(b, part[2], part[3]));
    if (s.isCodebook())
      return arith::AddFOp::create(b, acc, sum);

    // scale_l * (sum_j code_j x_j - zero_l * sum_j x_j), once per unit.
    auto [scale, zero] = unitScaleZero(n, blk);
    Value xsum = vector::LoadOp::create(b, vf, xs, ValueRange{mul(rb, idx(V))});
    Value centered =
        arith::SubFOp::create(b, sum, arith::MulFOp::create(b, zero, xsum));
    return fma(scale, centered, acc);
  }

  //===--- GEMV with int8 activations (AVX-512 VNNI)
  //------------------------===//
  //
  // The activations of each unit (32 input channels) are quantized to int8
  // with one scale d = max|x| / 127, as llama.cpp's Q8_0 does; vpdpbusd then
  // multiplies four unsigned codes by four signed activations and adds them
  // into each i32 lane. A unit's 32 codes form 8 slots of 4 bytes: slot
  // (q, i) is word q shifted by i*bits and masked per byte, with no per-code
  // work, for the widths that divide 8 (3-bit codes keep f32 activations).
  // y += scale * d * (sum q*xq - zero * sum xq) per unit.

  /// The codes (indices in the unit) in the four bytes of slot t: slot
  /// (q, i) = t is word q shifted right by i*bits, so byte c holds code
  /// q*(32/bits) + c*(8/bits) + i.
  std::array<int64_t, 4> slotCodes(int64_t t) const {
    std::array<int64_t, 4> j;
    int64_t perByte = 8 / bits, q = t / perByte, i = t % perByte;
    for (int64_t c = 0; c < 4; ++c)
      j[c] = q * (32 / bits) + c * perByte + i;
    return j;
  }

  /// Slot t of every unit: four codes as the bytes of an i32 lane.
  Value slotBytes(ArrayRef<Value> w, int64_t t) {
    int64_t perByte = 8 / bits, q = t / perByte, i = t % perByte;
    Value v = w[q];
    if (i)
      v = arith::ShRUIOp::create(b, v, splatI(i * bits));
    if (bits != 8)
      v = arith::AndIOp::create(
          b, v, splatI(int64_t(((1u << bits) - 1) * 0x01010101u)));
    return v;
  }

  /// Int8 activations of m rows: per unit of 32 input channels, its eight
  /// slots (four int8 each, in the order of the code slots) in `q`, its
  /// scale d in `d` and the sum of its int8 values in `sum`.
  struct Int8Activations {
    Value q, d, sum;
  };

  /// The i32 index in Int8Activations::q of slot t of unit `blk*V + l` of
  /// `row`. The GEMV's layout puts the units of a block side by side (lane =
  /// unit, `slotsLast` false); the GEMM's puts a unit's eight slots together.
  Value slotIndex(Value row, Value blk, Value l, Value t, bool slotsLast) {
    Value unit = add(mul(add(mul(row, idx(blocks)), blk), idx(V)), l);
    if (slotsLast)
      return add(mul(unit, idx(8)), t);
    return add(
        mul(add(mul(add(mul(row, idx(blocks)), blk), idx(8)), t), idx(V)), l);
  }

  Int8Activations quantizeActivations(Value m, bool slotsLast) {
    Int8Activations a;
    a.q = allocPerRow(m, i32, blocks * 8 * V);
    a.d = allocPerRow(m, f32, blocks * V);
    a.sum = allocPerRow(m, f32, blocks * V);
    auto v32 = VectorType::get({kUnit}, f32);
    auto v32i = VectorType::get({kUnit}, i32);
    auto v32b = VectorType::get({kUnit}, b.getI8Type());
    SmallVector<int64_t> order;
    for (int64_t t = 0; t < 8; ++t)
      for (int64_t j : slotCodes(t))
        order.push_back(j);
    loop(idx(0), m, idx(1), [&](Value row) {
      loop(idx(0), idx(blocks), idx(1), [&](Value blk) {
        Value rb = add(mul(row, idx(blocks)), blk);
        loop(idx(0), idx(V), idx(1), [&](Value l) {
          Value k0 = mul(add(mul(blk, idx(V)), l), idx(kUnit));
          Value avail = arith::SubIOp::create(b, idx(K), k0);
          Value mask = vector::CreateMaskOp::create(
              b, VectorType::get({kUnit}, b.getI1Type()), ValueRange{avail});
          Value zeros = arith::ConstantOp::create(
              b, DenseElementsAttr::get(v32, b.getF32FloatAttr(0.0f)));
          Value xv = vector::MaskedLoadOp::create(
              b, v32, buf.x, ValueRange{row, k0}, mask, zeros);
          Value amax = vector::ReductionOp::create(
              b, vector::CombiningKind::MAXIMUMF, math::AbsFOp::create(b, xv));
          Value zero = arith::ConstantOp::create(b, b.getF32FloatAttr(0.0f));
          Value c127 = arith::ConstantOp::create(b, b.getF32FloatAttr(127.0f));
          Value d = arith::DivFOp::create(b, amax, c127);
          Value positive =
              arith::CmpFOp::create(b, arith::CmpFPredicate::OGT, amax, zero);
          Value inv = arith::SelectOp::create(
              b, positive, arith::DivFOp::create(b, c127, amax), zero);
          Value scaled = arith::MulFOp::create(
              b, xv, vector::BroadcastOp::create(b, v32, inv));
          Value q = arith::FPToSIOp::create(
              b, v32i, math::RoundEvenOp::create(b, scaled));
          Value qsum =
              vector::ReductionOp::create(b, vector::CombiningKind::ADD, q);
          Value at = add(mul(rb, idx(V)), l);
          memref::StoreOp::create(b, d, a.d, ValueRange{at});
          memref::StoreOp::create(b, arith::SIToFPOp::create(b, f32, qsum),
                                  a.sum, ValueRange{at});
          Value q8 = arith::TruncIOp::create(b, v32b, q);
          Value slots = vector::BitCastOp::create(
              b, VectorType::get({8}, i32),
              vector::ShuffleOp::create(b, q8, q8, order));
          if (slotsLast) {
            vector::StoreOp::create(
                b, slots, a.q,
                ValueRange{slotIndex(row, blk, l, idx(0), true)});
            return;
          }
          for (int64_t t = 0; t < 8; ++t)
            memref::StoreOp::create(
                b, vector::ExtractOp::create(b, slots, t), a.q,
                ValueRange{slotIndex(row, blk, l, idx(t), false)});
        });
      });
    });
    return a;
  }

  void emitGemvInt8(Value m) {
    auto [xq, xd, xsum] = quantizeActivations(m, /*slotsLast=*/false);
    gemvRows(m, [&](Value n, Value row, Value blk, Value acc, bool masked) {
      return gemvBlockInt8(n, row, blk, xq, xd, xsum, acc, masked);
    });
    for (Value v : {xq, xd, xsum})
      memref::DeallocOp::create(b, v);
  }

  Value gemvBlockInt8(Value n, Value row, Value blk, Value xq, Value xd,
                      Value xsum, Value acc, bool masked) {
    SmallVector<Value> w = loadUnitWords(n, blk, masked);
    Value rb = add(mul(row, idx(blocks)), blk);
    auto bytes = VectorType::get({4 * V}, b.getI8Type());
    Value zeroI = splatI(0);
    SmallVector<Value> part(4, zeroI);
    StringAttr dot = b.getStringAttr("llvm.x86.avx512.vpdpbusd.512");
    for (int64_t t = 0; t < 8; ++t) {
      Value codes8 = vector::BitCastOp::create(b, bytes, slotBytes(w, t));
      Value xv = vector::LoadOp::create(
          b, vi, xq, ValueRange{mul(add(mul(rb, idx(8)), idx(t)), idx(V))});
      Value x8 = vector::BitCastOp::create(b, bytes, xv);
      part[t % 4] = LLVM::CallIntrinsicOp::create(
                        b, vi, dot, ValueRange{part[t % 4], codes8, x8})
                        .getResult(0);
    }
    Value sum =
        arith::AddIOp::create(b, arith::AddIOp::create(b, part[0], part[1]),
                              arith::AddIOp::create(b, part[2], part[3]));
    Value fsum = arith::SIToFPOp::create(b, vf, sum);
    auto [scale, zero] = unitScaleZero(n, blk);
    Value at = mul(rb, idx(V));
    Value d = vector::LoadOp::create(b, vf, xd, ValueRange{at});
    Value qsum = vector::LoadOp::create(b, vf, xsum, ValueRange{at});
    Value centered =
        arith::SubFOp::create(b, fsum, arith::MulFOp::create(b, zero, qsum));
    return fma(arith::MulFOp::create(b, scale, d), centered, acc);
  }

  /// total + the CSR outliers of row n times x[row] + bias[n].
  Value addOutliersAndBias(Value n, Value row, Value total,
                           bool withBias = true) {
    if (buf.rowPtr) {
      auto toIndex = [&](Value v) {
        return arith::IndexCastOp::create(b, b.getIndexType(), v);
      };
      Value first = toIndex(memref::LoadOp::create(b, buf.rowPtr, n));
      Value last = toIndex(
          memref::LoadOp::create(b, buf.rowPtr, ValueRange{add(n, idx(1))}));
      total = loop(
          first, last, idx(1), {total},
          [&](Value j, ValueRange acc) -> SmallVector<Value> {
            Value col =
                toIndex(memref::LoadOp::create(b, buf.colIdx, ValueRange{j}));
            Value xv = memref::LoadOp::create(b, buf.x, ValueRange{row, col});
            Value v = scalarToF32(
                memref::LoadOp::create(b, buf.values, ValueRange{j}));
            return {arith::AddFOp::create(b, acc[0],
                                          arith::MulFOp::create(b, xv, v))};
          })[0];
    }
    if (buf.bias && withBias)
      total = arith::AddFOp::create(
          b, total,
          scalarToF32(memref::LoadOp::create(b, buf.bias, ValueRange{n})));
    return total;
  }

  //===--- GEMM
  //-------------------------------------------------------------===//

  /// One GEMM over tiles of tileCols() output channels (threads): each tile
  /// is set to the bias (or zero) in every row, `product(n0, masks, rowIds)`
  /// adds x · Ŵ, then the CSR outliers are added. rowIds: per vector of the
  /// tile, the output channel of each lane, clamped to the last one (whose
  /// values past N are never stored); masks: the lanes that exist.
  void
  gemmTiles(Value m,
            llvm::function_ref<void(Value, ArrayRef<Value>, ArrayRef<Value>)>
                product) {
    const int64_t NT = tileCols(), halves = NT / V;
    const int64_t tiles = (N + NT - 1) / NT;
    outerLoop(idx(tiles), [&](Value t) {
      Value n0 = mul(t, idx(NT));
      SmallVector<Value> rowIds, masks = tileMasks(n0);
      for (int64_t h = 0; h < halves; ++h) {
        Value first = add(n0, idx(h * V));
        Value ids =
            arith::AddIOp::create(b, broadcast(vi, toI32(first)), laneTimes(1));
        rowIds.push_back(arith::MinUIOp::create(b, ids, splatI(N - 1)));
      }
      SmallVector<Value> init;
      for (int64_t h = 0; h < halves; ++h) {
        if (buf.bias) {
          Type bt = cast<MemRefType>(buf.bias.getType()).getElementType();
          auto t = VectorType::get({V}, bt);
          Value pass = arith::ConstantOp::create(
              b, DenseElementsAttr::get(t, b.getZeroAttr(bt)));
          init.push_back(toF32(vector::MaskedLoadOp::create(
              b, t, buf.bias, ValueRange{add(n0, idx(h * V))}, masks[h],
              pass)));
        } else {
          init.push_back(splatF(0.0));
        }
      }
      loop(idx(0), m, idx(1), [&](Value row) {
        for (int64_t h = 0; h < halves; ++h)
          vector::MaskedStoreOp::create(b, buf.out,
                                        ValueRange{row, add(n0, idx(h * V))},
                                        masks[h], init[h]);
      });
      product(n0, masks, rowIds);
      if (buf.rowPtr) {
        Value last = minU(add(n0, idx(NT)), idx(N));
        loop(n0, last, idx(1), [&](Value n) {
          loop(idx(0), m, idx(1), [&](Value row) {
            Value y = memref::LoadOp::create(b, buf.out, ValueRange{row, n});
            // Outliers only: the bias is already in the tile.
            y = addOutliersAndBias(n, row, y, /*withBias=*/false);
            memref::StoreOp::create(b, y, buf.out, ValueRange{row, n});
          });
        });
      }
    });
  }

  Value allocStatic(int64_t n, Type type) {
    return memref::AllocOp::create(b, MemRefType::get({n}, type), ValueRange{},
                                   b.getI64IntegerAttr(64));
  }

  void emitGemm(Value m) {
    const int64_t NT = tileCols();
    gemmTiles(m, [&](Value n0, ArrayRef<Value> masks, ArrayRef<Value> rowIds) {
      Value panel = allocStatic(kPanelK * NT, f32);
      tileProduct(
          m, idx(K), n0, masks, {},
          [&](Value kc0, Value kcLen) {
            decodePanel(panel, kc0, kcLen, rowIds);
          },
          [&](Value, Value kk, int64_t h) -> Value {
            return vector::LoadOp::create(
                b, vf, panel, ValueRange{add(mul(kk, idx(NT)), idx(h * V))});
          });
      memref::DeallocOp::create(b, panel);
    });
  }

  /// The `bits` words of unit `unit` of the rows in `rows` (one lane each).
  SmallVector<Value> gatherUnitWords(Value unit, Value rows) {
    Value rowWords = arith::MulIOp::create(b, rows, splatI(W));
    SmallVector<Value> w;
    for (unsigned q = 0; q < bits; ++q) {
      Value word = minU(add(mul(unit, idx(bits)), idx(q)), idx(W - 1));
      w.push_back(gather(codes, word, rowWords));
    }
    return w;
  }

  /// The scale (f32) and zero (i32) of group g of the rows in `rows` (one
  /// lane each), affine schemes.
  std::pair<Value, Value> laneScaleZero(Value rows, Value g) {
    Value scale, zero;
    if (s.isPerTensor()) {
      scale = broadcast(vf, scalarToF32(memref::LoadOp::create(
                                b, scales, ValueRange{idx(0)})));
      if (zeroPoints) {
        Value z = memref::LoadOp::create(b, zeroPoints, ValueRange{idx(0)});
        zero = broadcast(vi, arith::ExtUIOp::create(b, i32, z));
      }
    } else {
      Value at = arith::MulIOp::create(b, rows, splatI(G));
      scale = toF32(gather(scales, g, at));
      if (zeroPoints)
        zero = arith::ExtUIOp::create(b, vi, gather(zeroPoints, g, at));
    }
    if (!zero)
      zero = splatI(int64_t(1) << (bits - 1));
    return {scale, zero};
  }

  /// panel[kk*NT + h*V + l] = W[row_h,l][kc0 + kk] for kk < kcLen.
  void decodePanel(Value panel, Value kc0, Value kcLen,
                   ArrayRef<Value> rowIds) {
    const int64_t halves = rowIds.size(), NT = halves * V;
    Value unitsHere =
        arith::DivUIOp::create(b, add(kcLen, idx(kUnit - 1)), idx(kUnit));
    Value u0 = arith::DivUIOp::create(b, kc0, idx(kUnit));
    loop(idx(0), unitsHere, idx(1), [&](Value u) {
      Value unit = add(u0, u);
      Value k0 = mul(unit, idx(kUnit));
      for (int64_t h = 0; h < halves; ++h) {
        Value rows = rowIds[h];
        SmallVector<Value> w = gatherUnitWords(unit, rows);
        Value scale, zero;
        if (s.isAffine()) {
          auto [sc, z] = laneScaleZero(rows, groupOf(k0));
          scale = sc;
          zero = arith::SIToFPOp::create(b, vf, z);
        }
        Value lutRows;
        if (s.isCodebook())
          lutRows = arith::MulIOp::create(b, rows, splatI(int64_t(1) << bits));
        Value dst = add(mul(u, idx(kUnit * NT)), idx(h * V));
        for (int64_t j = 0; j < kUnit; ++j) {
          Value code = unitCode(w, j);
          Value value;
          if (s.isCodebook()) {
            value = toF32(
                gather(lut, idx(0), arith::AddIOp::create(b, lutRows, code)));
          } else {
            value = arith::MulFOp::create(
                b, arith::SubFOp::create(b, codeToF32(code), zero), scale);
          }
          vector::StoreOp::create(b, value, panel,
                                  ValueRange{add(dst, idx(j * NT))});
        }
      }
    });
  }

  //===--- GEMM with int8 activations (AVX-512 VNNI)
  //------------------------===//
  //
  // The activations are quantized per unit as for the GEMV, with a unit's
  // eight slots side by side. Per chunk of kPanelK input channels, each tile
  // of output channels gets a byte panel: per unit, slot t of every output
  // channel of the tile (four codes as the bytes of an i32 lane, from one
  // shift and mask of a word), with the unit's scale and negated zero per
  // lane. The micro-kernel keeps i32 sums for rowsInt8() rows × 2 vectors
  // over one unit (eight vpdpbusd per row and vector, each multiplying four
  // codes by four activations), starting from -zero * Σxq, and then adds
  // scale * d * sum into f32 accumulators.

  int64_t rowsInt8() const { return 4; }

  void emitGemmInt8(Value m) {
    const int64_t NT = tileCols(), halves = NT / V;
    const int64_t panelUnits = kPanelK / kUnit;
    Int8Activations xa = quantizeActivations(m, /*slotsLast=*/true);
    gemmTiles(m, [&](Value n0, ArrayRef<Value> masks, ArrayRef<Value> rowIds) {
      Value panel = allocStatic(panelUnits * 8 * NT, i32);
      Value scalePanel = allocStatic(panelUnits * NT, f32);
      Value zeroPanel = allocStatic(panelUnits * NT, i32);
      chunkLoop(idx(K), [&](Value kc0, Value kcLen) {
        Value u0 = arith::DivUIOp::create(b, kc0, idx(kUnit));
        Value unitsHere =
            arith::DivUIOp::create(b, add(kcLen, idx(kUnit - 1)), idx(kUnit));
        loop(idx(0), unitsHere, idx(1), [&](Value u) {
          Value unit = add(u0, u);
          for (int64_t h = 0; h < halves; ++h) {
            SmallVector<Value> w = gatherUnitWords(unit, rowIds[h]);
            for (int64_t t = 0; t < 8; ++t)
              vector::StoreOp::create(
                  b, slotBytes(w, t), panel,
                  ValueRange{add(mul(u, idx(8 * NT)), idx(t * NT + h * V))});
            auto [scale, zero] =
                laneScaleZero(rowIds[h], groupOf(mul(unit, idx(kUnit))));
            Value at = add(mul(u, idx(NT)), idx(h * V));
            vector::StoreOp::create(b, scale, scalePanel, ValueRange{at});
            vector::StoreOp::create(b,
                                    arith::SubIOp::create(b, splatI(0), zero),
                                    zeroPanel, ValueRange{at});
          }
        });
        forRowBlocks(m, rowsInt8(), [&](Value m0, int64_t rows) {
          microKernelInt8(xa, panel, scalePanel, zeroPanel, m0, rows, n0, u0,
                          unitsHere, masks);
        });
      });
      for (Value v : {panel, scalePanel, zeroPanel})
        memref::DeallocOp::create(b, v);
    });
    for (Value v : {xa.q, xa.d, xa.sum})
      memref::DeallocOp::create(b, v);
  }

  /// out[m0 .. m0+rows, n0 .. n0+tileCols()] += the product of units u0 ..
  /// u0+unitsHere of the activations by the byte panel.
  void microKernelInt8(const Int8Activations &xa, Value panel, Value scalePanel,
                       Value zeroPanel, Value m0, int64_t rows, Value n0,
                       Value u0, Value unitsHere, ArrayRef<Value> masks) {
    const int64_t halves = masks.size(), NT = halves * V;
    auto bytes = VectorType::get({4 * V}, b.getI8Type());
    StringAttr dot = b.getStringAttr("llvm.x86.avx512.vpdpbusd.512");
    SmallVector<Value> acc;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t h = 0; h < halves; ++h)
        acc.push_back(vector::MaskedLoadOp::create(
            b, vf, buf.out, ValueRange{add(m0, idx(i)), add(n0, idx(h * V))},
            masks[h], splatF(0.0)));
    acc = loop(
        idx(0), unitsHere, idx(1), acc,
        [&](Value u, ValueRange a) -> SmallVector<Value> {
          Value unit = add(u0, u);
          SmallVector<Value> at, isum;
          SmallVector<Value> zero, scale;
          for (int64_t h = 0; h < halves; ++h) {
            Value p = add(mul(u, idx(NT)), idx(h * V));
            zero.push_back(
                vector::LoadOp::create(b, vi, zeroPanel, ValueRange{p}));
            scale.push_back(
                vector::LoadOp::create(b, vf, scalePanel, ValueRange{p}));
          }
          for (int64_t i = 0; i < rows; ++i) {
            at.push_back(add(mul(add(m0, idx(i)), idx(blocks * V)), unit));
            Value xs = memref::LoadOp::create(b, xa.sum, ValueRange{at[i]});
            Value xsI = broadcast(vi, arith::FPToSIOp::create(b, i32, xs));
            for (int64_t h = 0; h < halves; ++h)
              isum.push_back(arith::MulIOp::create(b, zero[h], xsI));
          }
          for (int64_t t = 0; t < 8; ++t) {
            SmallVector<Value> bv;
            for (int64_t h = 0; h < halves; ++h)
              bv.push_back(vector::BitCastOp::create(
                  b, bytes,
                  vector::LoadOp::create(
                      b, vi, panel,
                      ValueRange{
                          add(mul(u, idx(8 * NT)), idx(t * NT + h * V))})));
            for (int64_t i = 0; i < rows; ++i) {
              Value xw = memref::LoadOp::create(
                  b, xa.q, ValueRange{add(mul(at[i], idx(8)), idx(t))});
              Value xb = vector::BitCastOp::create(b, bytes, broadcast(vi, xw));
              for (int64_t h = 0; h < halves; ++h) {
                Value &sum = isum[i * halves + h];
                sum = LLVM::CallIntrinsicOp::create(b, vi, dot,
                                                    ValueRange{sum, bv[h], xb})
                          .getResult(0);
              }
            }
          }
          SmallVector<Value> next(a.begin(), a.end());
          for (int64_t i = 0; i < rows; ++i) {
            Value d = broadcast(
                vf, memref::LoadOp::create(b, xa.d, ValueRange{at[i]}));
            for (int64_t h = 0; h < halves; ++h) {
              Value f = arith::SIToFPOp::create(b, vf, isum[i * halves + h]);
              next[i * halves + h] = fma(arith::MulFOp::create(b, scale[h], d),
                                         f, next[i * halves + h]);
            }
          }
          return next;
        });
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t h = 0; h < halves; ++h)
        vector::MaskedStoreOp::create(
            b, buf.out, ValueRange{add(m0, idx(i)), add(n0, idx(h * V))},
            masks[h], acc[i * halves + h]);
  }

  /// The masks of the vectors of output channels n0 .. n0+tileCols() that
  /// exist among n (N when null)
  /// (create_mask clamps: negative is none, over V is all).
  SmallVector<Value> tileMasks(Value n0, Value n = {}) {
    SmallVector<Value> masks;
    for (int64_t h = 0; h < tileCols() / V; ++h) {
      Value avail =
          arith::SubIOp::create(b, n ? n : idx(N), add(n0, idx(h * V)));
      masks.push_back(vector::CreateMaskOp::create(
          b, VectorType::get({V}, b.getI1Type()), ValueRange{avail}));
    }
    return masks;
  }

  /// out[m0 .. m0+rows, n0 .. n0+2V] += x[m0 .., kc0 .. kc0+kcLen] · B, where
  /// loadB(kk, h) is vector h of B's row kk.
  /// Output columns of a GEMM tile (two vectors) and rows of x per
  /// micro-kernel call (8, or 4 with 8-lane vectors, to stay in registers).
  int64_t tileCols() const { return 2 * V; }
  int64_t rowsPerBlock() const { return V >= 16 ? 8 : 4; }

  /// out[batch.., :m, n0 .. n0+tileCols()] += x[batch.., :m, :k] · B, in
  /// chunks of kPanelK input channels: `prepare(kc0, kcLen)` (if any) runs
  /// before each chunk, then the micro-kernel covers the rows, rowsPerBlock()
  /// at a time and one at a time for the rest; loadB(kc0, kk, h) is vector h
  /// of B's row kc0 + kk.
  void tileProduct(Value m, Value k, Value n0, ArrayRef<Value> masks,
                   ValueRange batch,
                   llvm::function_ref<void(Value, Value)> prepare,
                   llvm::function_ref<Value(Value, Value, int64_t)> loadB) {
    chunkLoop(k, [&](Value kc0, Value kcLen) {
      if (prepare)
        prepare(kc0, kcLen);
      rowBlocks(m, n0, kc0, kcLen, masks, batch,
                [&](Value kk, int64_t h) { return loadB(kc0, kk, h); });
    });
  }

  /// body(kc0, kcLen) for each chunk of kPanelK of the k input channels.
  void chunkLoop(Value k, llvm::function_ref<void(Value, Value)> body) {
    Value chunks =
        arith::DivUIOp::create(b, add(k, idx(kPanelK - 1)), idx(kPanelK));
    loop(idx(0), chunks, idx(1), [&](Value c) {
      Value kc0 = mul(c, idx(kPanelK));
      body(kc0, minU(idx(kPanelK), arith::SubIOp::create(b, k, kc0)));
    });
  }

  /// The micro-kernel over all m rows for one chunk: rowsPerBlock() rows at
  /// a time, then one at a time.
  void rowBlocks(Value m, Value n0, Value kc0, Value kcLen,
                 ArrayRef<Value> masks, ValueRange batch,
                 llvm::function_ref<Value(Value, int64_t)> row) {
    forRowBlocks(m, rowsPerBlock(), [&](Value m0, int64_t rows) {
      microKernel(row, m0, rows, n0, kc0, kcLen, masks, batch);
    });
  }

  /// kernel(m0, MT) over the full blocks of MT rows among m, then
  /// kernel(m0, 1) over the rest.
  void forRowBlocks(Value m, int64_t MT,
                    llvm::function_ref<void(Value, int64_t)> kernel) {
    Value mFull = mul(arith::DivUIOp::create(b, m, idx(MT)), idx(MT));
    loop(idx(0), mFull, idx(MT), [&](Value m0) { kernel(m0, MT); });
    loop(mFull, m, idx(1), [&](Value m0) { kernel(m0, 1); });
  }

  /// `batch` (empty, or one index) leads the indices of x and out.
  void microKernel(llvm::function_ref<Value(Value, int64_t)> loadB, Value m0,
                   int64_t rows, Value n0, Value kc0, Value kcLen,
                   ArrayRef<Value> masks, ValueRange batch = {}) {
    const int64_t halves = masks.size();
    auto at = [&](Value r, Value c) {
      SmallVector<Value> ix(batch.begin(), batch.end());
      ix.push_back(r);
      ix.push_back(c);
      return ix;
    };
    SmallVector<Value> acc;
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t h = 0; h < halves; ++h)
        acc.push_back(vector::MaskedLoadOp::create(
            b, vf, buf.out, at(add(m0, idx(i)), add(n0, idx(h * V))), masks[h],
            splatF(0.0)));
    acc = loop(idx(0), kcLen, idx(1), acc,
               [&](Value kk, ValueRange a) -> SmallVector<Value> {
                 SmallVector<Value> bv, next(a.begin(), a.end());
                 for (int64_t h = 0; h < halves; ++h)
                   bv.push_back(loadB(kk, h));
                 Value k = add(kc0, kk);
                 for (int64_t i = 0; i < rows; ++i) {
                   Value xv =
                       memref::LoadOp::create(b, buf.x, at(add(m0, idx(i)), k));
                   Value xb = broadcast(vf, xv);
                   for (int64_t h = 0; h < halves; ++h)
                     next[i * halves + h] =
                         fma(xb, bv[h], next[i * halves + h]);
                 }
                 return next;
               });
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t h = 0; h < halves; ++h)
        vector::MaskedStoreOp::create(b, buf.out,
                                      at(add(m0, idx(i)), add(n0, idx(h * V))),
                                      masks[h], acc[i * halves + h]);
  }
};

} // namespace

void emitFloatMatmul(OpBuilder &b, Location loc, Value x, Value weights,
                     Value out, const CPUKernelOptions &options) {
  FusedMatmulBuffers buf;
  auto w = cast<MemRefType>(weights.getType());
  buf.rows = w.getDimSize(1);
  buf.cols = w.getDimSize(0);
  buf.x = x;
  buf.codes = weights;
  buf.out = out;
  KernelBuilder(b, loc, buf, options).emitFloat();
}

void emitBatchedFloatMatmul(OpBuilder &b, Location loc, Value x, Value w,
                            Value out, const CPUKernelOptions &options) {
  FusedMatmulBuffers buf;
  buf.x = x;
  buf.out = out;
  KernelBuilder(b, loc, buf, options)
      .emitBatchedFloat(w, options.parallelMinWeights * 16);
}

void emitVectorFusedMatmul(OpBuilder &b, Location loc,
                           const FusedMatmulBuffers &buf,
                           const CPUKernelOptions &options) {
  KernelBuilder(b, loc, buf, options).emit();
}

} // namespace qforge::codegen
