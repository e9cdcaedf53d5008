//===- WarpGemvKernel.h - Warp-per-row dequant GEMV for GPUs -----*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// The CUDA target's kernel for 2-, 4- and 8-bit affine fused matmuls (and, in
// f32 with table look-ups, 2- to 4-bit codebooks; CSR outliers): one warp
// per output channel, each lane reading 128 bits of packed codes per step,
// decoding them to f16 pairs with the 0x6400 exponent trick, multiplying them
// with x (staged once per block in shared memory as f16, in pair order) in
// f16x2, widening each word's sums to f32 and reducing the lanes with a
// butterfly. The per-lane arithmetic is emitted by one generator for both the
// GPU kernel and a CPU emulation of it (`qf-emulate-warp-gemv`), so the
// kernel's numerics are tested on machines without a GPU.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_CODEGEN_WARPGEMVKERNEL_H
#define QFORGE_CODEGEN_WARPGEMVKERNEL_H

#include "qforge/Codegen/FusedMatmulKernel.h"

#include <functional>

namespace qforge::codegen {

/// Lanes of a warp, and the words of codes one lane loads per step (128 bits).
constexpr int64_t kWarpLanes = 32;
constexpr int64_t kWarpGemvWordsPerLane = 4;

/// Codes in one lane's step: 64, 32, 32 or 16 at 2, 3, 4 or 8 bits (128 bits
/// of codes; a unit of 3 words at 3 bits).
int64_t warpGemvCodesPerLane(unsigned bits);

/// Whether the warp GEMV computes this fused matmul: f32 activations and
/// output, K a multiple of a lane's step no larger than 16384, and either an
/// affine 2-, 4- or 8-bit scheme with groups of a multiple of a lane's step
/// (or one per row or tensor), or a 2-, 3- or 4-bit codebook; CSR outliers
/// with either.
bool canUseWarpGemv(qf::FusedMatmulOp op);
bool canUseWarpGemv(const FusedMatmulBuffers &buf);

/// Whether the kernel stages x in shared memory as f16 (affine schemes).
bool warpGemvStagesX(const FusedMatmulBuffers &buf);

/// What differs between the GPU kernel and its CPU emulation.
struct WarpGemvTarget {
  /// `(word & mask) | 0x64006400` as one instruction (lop3 on the GPU).
  std::function<mlir::Value(mlir::OpBuilder &, mlir::Location, mlir::Value,
                            uint32_t mask)>
      maskOr;
  /// Alignment of the 128-bit code loads (0: none asserted).
  int64_t codeAlignment = 0;
};

/// Rows of x one block computes together (each code decoded once for all of
/// them): 4, or fewer where 4 rows of x do not fit in 32 KiB as f16.
int64_t warpGemvTileRows(const FusedMatmulBuffers &buf);

/// The f16 buffer a tile of x is staged into: [rows * K], in `memorySpace`.
mlir::MemRefType stagedXType(const FusedMatmulBuffers &buf, int64_t rows,
                             mlir::Attribute memorySpace);

/// Emits `body(rows)` for a tile of `rows`, behind a run-time test that takes
/// a tile of 1 when x has one row (decode: no work on rows that do not exist).
void emitForTileRows(
    mlir::OpBuilder &b, mlir::Location loc, const FusedMatmulBuffers &buf,
    int64_t rows,
    const std::function<void(mlir::OpBuilder &, int64_t rows)> &body);

/// Stores rows m0 .. m0 + rows - 1 of x as f16 into `xs` ([rows * K], row r
/// at r * K) in pair order: within each word's W codes the order 0, W/2, 1,
/// W/2+1, ..., the pairs the decode produces (for 4 bits 0,4,1,5,2,6,3,7).
/// Rows past the end of x stage zeros. Thread `t` of `count` stores elements
/// t, t + count, ...
void emitStageX(mlir::OpBuilder &b, mlir::Location loc,
                const FusedMatmulBuffers &buf, mlir::Value m0, int64_t rows,
                mlir::Value xs, mlir::Value t, mlir::Value count);

/// Lane `lane`'s f32 parts of out[m0 + r, n] for the `rows` rows of the tile,
/// CSR outliers included, bias not. Affine schemes read x from `xs` (staged);
/// codebook schemes read it from global memory in f32 (`xs` is null).
llvm::SmallVector<mlir::Value>
emitLanePartials(mlir::OpBuilder &b, mlir::Location loc,
                 const FusedMatmulBuffers &buf, const WarpGemvTarget &target,
                 mlir::Value xs, mlir::Value m0, int64_t rows, mlir::Value n,
                 mlir::Value lane);

/// The butterfly over lane values: at each of the 5 steps (offsets 16 .. 1)
/// a lane combines its value with that of lane ^ offset,
/// `combine(v, exchange(v, o))` (`v + exchange(v, o)` without `combine`).
/// Returns the value every lane holds at the end.
mlir::Value emitButterfly(
    mlir::OpBuilder &b, mlir::Location loc, mlir::Value v,
    const std::function<mlir::Value(mlir::Value, int32_t)> &exchange,
    const std::function<mlir::Value(mlir::Value, mlir::Value)> &combine = {});

/// The value lane ^ offset holds (gpu.shuffle xor over the 32 lanes of a
/// warp), for a 32-bit `v`.
mlir::Value emitWarpShuffleXor(mlir::OpBuilder &b, mlir::Location loc,
                               mlir::Value v, int32_t offset);

/// The same exchange where a vector<32xT> stands for the lanes of a warp
/// (element l for lane l): the CPU emulations' butterfly.
mlir::Value emitLaneVectorShuffleXor(mlir::OpBuilder &b, mlir::Location loc,
                                     mlir::Value v, int32_t offset);

/// out[m0 + r, n] = totals[r] (+ bias[n]) for the rows inside x.
void emitStoreRows(mlir::OpBuilder &b, mlir::Location loc,
                   const FusedMatmulBuffers &buf, mlir::Value m0, mlir::Value n,
                   llvm::ArrayRef<mlir::Value> totals);

} // namespace qforge::codegen

#endif // QFORGE_CODEGEN_WARPGEMVKERNEL_H
