//===- WarpGemvKernel.cpp - Warp-per-row dequant GEMV for GPUs ---*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "qforge/Codegen/WarpGemvKernel.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"

using namespace mlir;

namespace qforge::codegen {

namespace {
constexpr int64_t kMaxStagedCols = 16384;
// The rows of a tile share the shared-memory budget: 4 rows up to K = 4096,
// 2 up to 8192, else 1.
constexpr int64_t kWarpGemvMaxTileRows = 4;
constexpr int64_t kWarpGemvStagingBytes = 32768;

Value idx(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIndexOp::create(b, loc, v);
}
Value i32(OpBuilder &b, Location loc, int64_t v) {
  return arith::ConstantIntOp::create(b, loc, b.getI32Type(), v);
}
Value f32(OpBuilder &b, Location loc, double v) {
  return arith::ConstantOp::create(b, loc, b.getF32FloatAttr(v));
}
/// Loads a float and widens it to f32.
Value loadF32(OpBuilder &b, Location loc, Value mem, ValueRange ix) {
  Value v = memref::LoadOp::create(b, loc, mem, ix);
  if (v.getType().isF32())
    return v;
  return arith::ExtFOp::create(b, loc, b.getF32Type(), v);
}
} // namespace

/// Words a lane loads per step: 128 bits, or a unit of 3 words (32 codes)
/// at 3 bits.
static int64_t stepWords(unsigned bits) {
  return bits == 3 ? 3 : kWarpGemvWordsPerLane;
}

int64_t warpGemvCodesPerLane(unsigned bits) {
  return stepWords(bits) * 32 / bits;
}

bool warpGemvStagesX(const FusedMatmulBuffers &buf) {
  return !buf.scheme.isCodebook();
}

/// The test of canUseWarpGemv on what it depends on (x and the output keep
/// their element types when flattened).
static bool canUseWarpGemv(qf::SchemeAttr s, Type xElement, Type outElement,
                           int64_t K) {
  unsigned bits = s.getBits();
  bool affine = s.isAffine() && (bits == 2 || bits == 4 || bits == 8);
  bool codebook = s.isCodebook() && bits >= 2 && bits <= 4;
  if (!affine && !codebook)
    return false;
  if (!xElement.isF32() || !outElement.isF32())
    return false;
  int64_t perLane = warpGemvCodesPerLane(bits);
  if (K % perLane != 0 || K > kMaxStagedCols)
    return false;
  int64_t groupSize = s.getGroupSize();
  return codebook || groupSize <= 0 || groupSize % perLane == 0;
}

static Type elementType(Value v) {
  return cast<ShapedType>(v.getType()).getElementType();
}

bool canUseWarpGemv(qf::FusedMatmulOp op) {
  return canUseWarpGemv(op.getScheme(), elementType(op.getX()),
                        elementType(op.getInit()), op.getK());
}

bool canUseWarpGemv(const FusedMatmulBuffers &buf) {
  return canUseWarpGemv(buf.scheme, elementType(buf.x), elementType(buf.out),
                        buf.cols);
}

MemRefType stagedXType(const FusedMatmulBuffers &buf, int64_t rows,
                       Attribute memorySpace) {
  Builder b(buf.x.getContext());
  return MemRefType::get({rows * buf.cols}, b.getF16Type(),
                         MemRefLayoutAttrInterface(), memorySpace);
}

int64_t warpGemvTileRows(const FusedMatmulBuffers &buf) {
  int64_t rows = kWarpGemvMaxTileRows;
  while (rows > 1 && rows * buf.cols * 2 > kWarpGemvStagingBytes)
    rows /= 2;
  return rows;
}

void emitForTileRows(OpBuilder &b, Location loc, const FusedMatmulBuffers &buf,
                     int64_t rows,
                     const std::function<void(OpBuilder &, int64_t)> &body) {
  int64_t staticM = cast<MemRefType>(buf.x.getType()).getDimSize(0);
  if (rows == 1 || staticM == 1)
    return body(b, 1);
  Value M = memref::DimOp::create(b, loc, buf.x, 0);
  Value single = arith::CmpIOp::create(b, loc, arith::CmpIPredicate::eq, M,
                                       idx(b, loc, 1));
  auto branch = scf::IfOp::create(b, loc, single, /*withElseRegion=*/true);
  OpBuilder::InsertionGuard g(b);
  b.setInsertionPointToStart(branch.thenBlock());
  body(b, 1);
  b.setInsertionPointToStart(branch.elseBlock());
  body(b, rows);
}

void emitStageX(OpBuilder &b, Location loc, const FusedMatmulBuffers &buf,
                Value m0, int64_t rows, Value xs, Value t, Value count) {
  int64_t perWord = 32 / buf.scheme.getBits(), pairs = perWord / 2;
  int64_t K = buf.cols;
  Value M = memref::DimOp::create(b, loc, buf.x, 0);
  scf::ForOp::create(
      b, loc, t, idx(b, loc, rows * K), count, ValueRange{},
      [&](OpBuilder &sb, Location sl, Value i, ValueRange) {
        Value r = arith::DivUIOp::create(sb, sl, i, idx(sb, sl, K));
        Value k = arith::RemUIOp::create(sb, sl, i, idx(sb, sl, K));
        Value m = arith::AddIOp::create(sb, sl, m0, r);
        // Code c of a word of W codes is in pair c mod W/2, half c / (W/2):
        // column k goes to (k & ~(W-1)) | (k & (W/2-1)) << 1 | (k / (W/2)) & 1.
        Value base =
            arith::AndIOp::create(sb, sl, k, idx(sb, sl, ~(perWord - 1)));
        Value low = arith::AndIOp::create(sb, sl, k, idx(sb, sl, pairs - 1));
        low = arith::ShLIOp::create(sb, sl, low, idx(sb, sl, 1));
        Value half = arith::DivUIOp::create(sb, sl, k, idx(sb, sl, pairs));
        half = arith::AndIOp::create(sb, sl, half, idx(sb, sl, 1));
        Value pos = arith::OrIOp::create(sb, sl, base, low);
        pos = arith::OrIOp::create(sb, sl, pos, half);
        pos = arith::AddIOp::create(sb, sl, pos,
                                    arith::SubIOp::create(sb, sl, i, k));
        // Rows past the end of x (the last tile) stage zeros.
        Value inside =
            arith::CmpIOp::create(sb, sl, arith::CmpIPredicate::ult, m, M);
        auto read = scf::IfOp::create(
            sb, sl, inside,
            [&](OpBuilder &rb, Location rl) {
              Value v = memref::LoadOp::create(rb, rl, buf.x, ValueRange{m, k});
              scf::YieldOp::create(rb, rl, v);
            },
            [&](OpBuilder &rb, Location rl) {
              scf::YieldOp::create(rb, rl, f32(rb, rl, 0.0));
            });
        Value h =
            arith::TruncFOp::create(sb, sl, sb.getF16Type(), read.getResult(0));
        memref::StoreOp::create(sb, sl, h, xs, ValueRange{pos});
        scf::YieldOp::create(sb, sl);
      });
}

/// The affine schemes: codes decoded to f16 pairs, products in f16x2 against
/// the staged x.
static SmallVector<Value> emitAffinePartials(OpBuilder &b, Location loc,
                                             const FusedMatmulBuffers &buf,
                                             const WarpGemvTarget &target,
                                             Value xs, int64_t rows, Value n,
                                             Value lane) {
  qf::SchemeAttr s = buf.scheme;
  int64_t K = buf.cols;
  unsigned bits = s.getBits();
  int64_t groupSize = s.getGroupSize() > 0 ? s.getGroupSize() : K;
  int64_t perLane = warpGemvCodesPerLane(bits), perWord = 32 / bits;
  int64_t pairs = perWord / 2;
  // The codes of a pair: bits [bits*j, bits*(j+1)) of each 16-bit half.
  uint32_t pairMask = ((1u << bits) - 1) * 0x10001u;
  Value scaleRow = s.isPerTensor() ? idx(b, loc, 0) : n;
  Type f16 = b.getF16Type();
  auto pairType = VectorType::get({2}, f16);
  auto wordsType = VectorType::get({kWarpGemvWordsPerLane}, b.getI32Type());
  auto xType = VectorType::get({perWord}, f16);
  llvm::MaybeAlign align;
  if (target.codeAlignment)
    align = llvm::Align(target.codeAlignment);

  auto loop = scf::ForOp::create(
      b, loc, lane, idx(b, loc, K / perLane), idx(b, loc, kWarpLanes),
      SmallVector<Value>(rows, f32(b, loc, 0.0)),
      [&](OpBuilder &cb, Location cl, Value c, ValueRange iter) {
        Value w0 = arith::MulIOp::create(cb, cl, c,
                                         idx(cb, cl, kWarpGemvWordsPerLane));
        Value words = vector::LoadOp::create(cb, cl, wordsType, buf.codes,
                                             ValueRange{n, w0},
                                             /*nontemporal=*/false, align);
        Value k0 = arith::MulIOp::create(cb, cl, c, idx(cb, cl, perLane));
        Value g = arith::DivUIOp::create(cb, cl, k0, idx(cb, cl, groupSize));
        Value scale = loadF32(cb, cl, buf.scales, {scaleRow, g});
        // 1024 + zero as f16 (exact): the decoded pair is 1024 + code, so one
        // subtraction gives code - zero exactly.
        Value offset;
        if (s.hasZeroPoints()) {
          Value z = memref::LoadOp::create(cb, cl, buf.zeroPoints,
                                           ValueRange{scaleRow, g});
          z = arith::ExtUIOp::create(cb, cl, cb.getI32Type(), z);
          z = arith::AddIOp::create(cb, cl, z, i32(cb, cl, 1024));
          offset = arith::UIToFPOp::create(cb, cl, f16, z);
          offset = vector::BroadcastOp::create(cb, cl, pairType, offset);
        } else {
          offset = arith::ConstantOp::create(
              cb, cl,
              DenseElementsAttr::get(
                  pairType,
                  cb.getF16FloatAttr(1024.0 + (1 << (bits - 1))).getValue()));
        }
        SmallVector<Value> chunk(rows, f32(cb, cl, 0.0));
        for (int64_t w = 0; w < kWarpGemvWordsPerLane; ++w) {
          Value word = vector::ExtractOp::create(cb, cl, words, w);
          Value xpos =
              arith::AddIOp::create(cb, cl, k0, idx(cb, cl, perWord * w));
          SmallVector<Value> xv, sum(rows);
          for (int64_t r = 0; r < rows; ++r) {
            Value pos = arith::AddIOp::create(cb, cl, xpos, idx(cb, cl, r * K));
            xv.push_back(
                vector::LoadOp::create(cb, cl, xType, xs, ValueRange{pos}));
          }
          // Pair j holds codes j and j + pairs (bits at bits*j and 16 +
          // bits*j); each is decoded once for all rows of the tile.
          for (int64_t j = 0; j < pairs; ++j) {
            Value shifted = j ? Value(arith::ShRUIOp::create(
                                    cb, cl, word, i32(cb, cl, bits * j)))
                              : word;
            Value pairBits = target.maskOr(cb, cl, shifted, pairMask);
            Value asVec = vector::BroadcastOp::create(
                cb, cl, VectorType::get({1}, cb.getI32Type()), pairBits);
            Value pair = vector::BitCastOp::create(cb, cl, pairType, asVec);
            Value q = arith::SubFOp::create(cb, cl, pair, offset);
            for (int64_t r = 0; r < rows; ++r) {
              Value xp = vector::ShuffleOp::create(
                  cb, cl, xv[r], xv[r], ArrayRef<int64_t>{2 * j, 2 * j + 1});
              sum[r] = j ? Value(LLVM::FMAOp::create(cb, cl, q, xp, sum[r]))
                         : Value(arith::MulFOp::create(cb, cl, q, xp));
            }
          }
          for (int64_t r = 0; r < rows; ++r) {
            Value wide = arith::ExtFOp::create(
                cb, cl, VectorType::get({2}, cb.getF32Type()), sum[r]);
            Value lo = vector::ExtractOp::create(cb, cl, wide, 0);
            Value hi = vector::ExtractOp::create(cb, cl, wide, 1);
            Value both = arith::AddFOp::create(cb, cl, lo, hi);
            chunk[r] = arith::AddFOp::create(cb, cl, chunk[r], both);
          }
        }
        SmallVector<Value> acc;
        for (int64_t r = 0; r < rows; ++r) {
          Value scaled = arith::MulFOp::create(cb, cl, scale, chunk[r]);
          acc.push_back(arith::AddFOp::create(cb, cl, iter[r], scaled));
        }
        scf::YieldOp::create(cb, cl, acc);
      });
  return SmallVector<Value>(loop.getResults());
}

/// Row m0 + r of x, clamped to the last row: a tile's rows past the end read
/// the last row, and their results are not stored.
static SmallVector<Value> tileRowsOfX(OpBuilder &b, Location loc,
                                      const FusedMatmulBuffers &buf, Value m0,
                                      int64_t rows) {
  Value M = memref::DimOp::create(b, loc, buf.x, 0);
  Value last = arith::SubIOp::create(b, loc, M, idx(b, loc, 1));
  SmallVector<Value> out;
  for (int64_t r = 0; r < rows; ++r) {
    Value m = arith::AddIOp::create(b, loc, m0, idx(b, loc, r));
    out.push_back(arith::MinUIOp::create(b, loc, m, last));
  }
  return out;
}

/// The codebook schemes: each code looks up its row's table entry (f32), times
/// x read from global memory in f32, fused multiply-adds in f32.
static SmallVector<Value> emitCodebookPartials(OpBuilder &b, Location loc,
                                               const FusedMatmulBuffers &buf,
                                               const WarpGemvTarget &target,
                                               Value m0, int64_t rows, Value n,
                                               Value lane) {
  unsigned bits = buf.scheme.getBits();
  int64_t K = buf.cols, perLane = warpGemvCodesPerLane(bits);
  int64_t words = stepWords(bits);
  llvm::MaybeAlign align;
  if (target.codeAlignment)
    align = llvm::Align(target.codeAlignment);
  SmallVector<Value> mRows = tileRowsOfX(b, loc, buf, m0, rows);
  auto xType = VectorType::get({4}, b.getF32Type());
  auto loop = scf::ForOp::create(
      b, loc, lane, idx(b, loc, K / perLane), idx(b, loc, kWarpLanes),
      SmallVector<Value>(rows, f32(b, loc, 0.0)),
      [&](OpBuilder &cb, Location cl, Value c, ValueRange iter) {
        Value w0 = arith::MulIOp::create(cb, cl, c, idx(cb, cl, words));
        SmallVector<Value> unit;
        if (words == kWarpGemvWordsPerLane) {
          Value v = vector::LoadOp::create(
              cb, cl, VectorType::get({words}, cb.getI32Type()), buf.codes,
              ValueRange{n, w0}, /*nontemporal=*/false, align);
          for (int64_t w = 0; w < words; ++w)
            unit.push_back(vector::ExtractOp::create(cb, cl, v, w));
        } else {
          for (int64_t w = 0; w < words; ++w)
            unit.push_back(memref::LoadOp::create(
                cb, cl, buf.codes,
                ValueRange{n,
                           arith::AddIOp::create(cb, cl, w0, idx(cb, cl, w))}));
        }
        Value k0 = arith::MulIOp::create(cb, cl, c, idx(cb, cl, perLane));
        SmallVector<Value> acc(iter.begin(), iter.end());
        SmallVector<Value> xv(rows);
        for (int64_t j = 0; j < perLane; ++j) {
          Value code = emitUnitCode(cb, cl, unit, j, bits);
          Value ci =
              arith::IndexCastUIOp::create(cb, cl, cb.getIndexType(), code);
          Value value = loadF32(cb, cl, buf.lut, ValueRange{n, ci});
          for (int64_t r = 0; r < rows; ++r) {
            // x in 128-bit loads of 4 columns.
            if (j % 4 == 0) {
              Value k = arith::AddIOp::create(cb, cl, k0, idx(cb, cl, j));
              xv[r] = vector::LoadOp::create(cb, cl, xType, buf.x,
                                             ValueRange{mRows[r], k},
                                             /*nontemporal=*/false, align);
            }
            Value x = vector::ExtractOp::create(cb, cl, xv[r], j % 4);
            acc[r] = LLVM::FMAOp::create(cb, cl, x, value, acc[r]);
          }
        }
        scf::YieldOp::create(cb, cl, acc);
      });
  return SmallVector<Value>(loop.getResults());
}

/// The CSR outliers of row n: lane l takes nonzeros l, l + 32, ... of the row
/// and adds value · x (f32 fused multiply-adds) to its parts.
static void emitLaneOutliers(OpBuilder &b, Location loc,
                             const FusedMatmulBuffers &buf, Value m0, Value n,
                             Value lane, SmallVector<Value> &partials) {
  auto toIndex = [&](Value v) {
    return arith::IndexCastOp::create(b, loc, b.getIndexType(), v);
  };
  SmallVector<Value> mRows =
      tileRowsOfX(b, loc, buf, m0, int64_t(partials.size()));
  Value first =
      toIndex(memref::LoadOp::create(b, loc, buf.rowPtr, ValueRange{n}));
  Value next = arith::AddIOp::create(b, loc, n, idx(b, loc, 1));
  Value last =
      toIndex(memref::LoadOp::create(b, loc, buf.rowPtr, ValueRange{next}));
  Value start = arith::AddIOp::create(b, loc, first, lane);
  auto loop = scf::ForOp::create(
      b, loc, start, last, idx(b, loc, kWarpLanes), partials,
      [&](OpBuilder &sb, Location sl, Value j, ValueRange iter) {
        Value col = arith::IndexCastOp::create(
            sb, sl, sb.getIndexType(),
            memref::LoadOp::create(sb, sl, buf.colIdx, ValueRange{j}));
        Value value = loadF32(sb, sl, buf.values, ValueRange{j});
        SmallVector<Value> acc;
        for (auto [r, m] : llvm::enumerate(mRows)) {
          Value x = memref::LoadOp::create(sb, sl, buf.x, ValueRange{m, col});
          acc.push_back(LLVM::FMAOp::create(sb, sl, value, x, iter[r]));
        }
        scf::YieldOp::create(sb, sl, acc);
      });
  partials.assign(loop.getResults().begin(), loop.getResults().end());
}

SmallVector<Value> emitLanePartials(OpBuilder &b, Location loc,
                                    const FusedMatmulBuffers &buf,
                                    const WarpGemvTarget &target, Value xs,
                                    Value m0, int64_t rows, Value n,
                                    Value lane) {
  SmallVector<Value> partials =
      buf.scheme.isCodebook()
          ? emitCodebookPartials(b, loc, buf, target, m0, rows, n, lane)
          : emitAffinePartials(b, loc, buf, target, xs, rows, n, lane);
  if (buf.rowPtr)
    emitLaneOutliers(b, loc, buf, m0, n, lane, partials);
  return partials;
}

Value emitButterfly(OpBuilder &b, Location loc, Value v,
                    const std::function<Value(Value, int32_t)> &exchange,
                    const std::function<Value(Value, Value)> &combine) {
  for (int32_t offset = kWarpLanes / 2; offset > 0; offset /= 2) {
    Value other = exchange(v, offset);
    v = combine ? combine(v, other)
                : Value(arith::AddFOp::create(b, loc, v, other));
  }
  return v;
}

Value emitWarpShuffleXor(OpBuilder &b, Location loc, Value v, int32_t offset) {
  return gpu::ShuffleOp::create(b, loc, v, offset, int32_t(kWarpLanes),
                                gpu::ShuffleMode::XOR)
      .getShuffleResult();
}

Value emitLaneVectorShuffleXor(OpBuilder &b, Location loc, Value v,
                               int32_t offset) {
  SmallVector<int64_t> mask;
  for (int64_t l = 0; l < kWarpLanes; ++l)
    mask.push_back(l ^ offset);
  return vector::ShuffleOp::create(b, loc, v, v, mask);
}

void emitStoreRows(OpBuilder &b, Location loc, const FusedMatmulBuffers &buf,
                   Value m0, Value n, ArrayRef<Value> totals) {
  Value bias;
  if (buf.bias)
    bias = loadF32(b, loc, buf.bias, ValueRange{n});
  Value M = memref::DimOp::create(b, loc, buf.x, 0);
  for (auto [r, total] : llvm::enumerate(totals)) {
    Value m = arith::AddIOp::create(b, loc, m0, idx(b, loc, r));
    Value inside =
        arith::CmpIOp::create(b, loc, arith::CmpIPredicate::ult, m, M);
    auto store = scf::IfOp::create(b, loc, inside, /*withElseRegion=*/false);
    OpBuilder::InsertionGuard g(b);
    b.setInsertionPointToStart(store.thenBlock());
    Value v = bias ? Value(arith::AddFOp::create(b, loc, total, bias)) : total;
    memref::StoreOp::create(b, loc, v, buf.out, ValueRange{m, n});
  }
}

} // namespace qforge::codegen
