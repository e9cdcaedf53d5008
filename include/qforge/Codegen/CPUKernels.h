//===- CPUKernels.h - Vectorized CPU matmul kernels --------------*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// SIMD kernels for a buffer-form qf.fused_matmul, emitted as vector/scf/arith/
// memref IR. Two variants, chosen at run time by the number of activation rows
// M (dynamic when the sequence length is):
//
//  - GEMV (M <= gemvMaxRows, decode): a lane of the vector is a unit of 32
//    consecutive codes (`bits` packed words), so one vector load brings the
//    words of `width` units in storage order and constant shifts cut code j of
//    every unit at once; the activations are transposed once per call to the
//    same lane order. Each lane applies its group's scale once per unit;
//    zero points are folded through per-unit activation sums.
//  - GEMM (M > gemvMaxRows, prefill): per tile of 2*width output channels and
//    256 input channels, the codes are decoded once into a cache-resident f32
//    panel, then a register-blocked micro-kernel (rows x 2 vectors of
//    accumulators) multiplies every activation row by it. With int8
//    activations (VNNI) the panel holds the codes as bytes, four input
//    channels per i32 lane, and the micro-kernel sums one 32-channel unit
//    with vpdpbusd before scaling into f32.
//
// Both run their outer loop as scf.parallel (threads through OpenMP) when the
// layer is large enough to pay for a fork. The GEMM micro-kernel also serves
// float matmuls: emitFloatMatmul over a copied (packed) panel of the weights,
// emitBatchedFloatMatmul reading the right operand in place.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_CODEGEN_CPUKERNELS_H
#define QFORGE_CODEGEN_CPUKERNELS_H

#include "qforge/Codegen/FusedMatmulKernel.h"

namespace qforge::codegen {

struct CPUKernelOptions {
  /// f32 lanes per vector: 16 (AVX-512) or 8 (AVX2).
  int64_t vectorWidth = 16;
  /// Largest M that takes the GEMV kernel.
  int64_t gemvMaxRows = 4;
  /// GEMV and GEMM with activations quantized to int8 per 32 input channels
  /// and integer dot products (AVX-512 VNNI vpdpbusd); affine schemes of 1,
  /// 2, 4 or 8 bits with 16 lanes only (their codes sit in bytes after one
  /// shift and mask), others keep f32 activations.
  bool int8Activations = false;
  /// Layers with fewer weights (N * K) run their loops on one thread.
  int64_t parallelMinWeights = 1 << 17;
};

/// Whether the vector kernels handle this fused matmul: f32 activations and
/// output, an affine scheme whose groups are whole 32-code units (or per
/// channel / per tensor) or a codebook scheme.
bool canVectorizeFusedMatmul(const FusedMatmulBuffers &buf);

/// Emits the vector kernels (GEMV and GEMM behind a test on M) for `buf` at
/// the builder's insertion point.
void emitVectorFusedMatmul(mlir::OpBuilder &b, mlir::Location loc,
                           const FusedMatmulBuffers &buf,
                           const CPUKernelOptions &options);

/// Emits out[M, N] += x[M, K] · weights[K, N] for float weights of static
/// shape (x, out: 2-D memrefs, M may be dynamic): up to gemvMaxRows rows by a
/// GEMV that streams the weights in storage order (split-K over threads for
/// large layers), more rows by the GEMM micro-kernel, threaded over tiles of
/// output channels like the fused kernels.
void emitFloatMatmul(mlir::OpBuilder &b, mlir::Location loc, mlir::Value x,
                     mlir::Value weights, mlir::Value out,
                     const CPUKernelOptions &options);

/// Emits out[B, M, N] += x[B, M, K] · w[B, K, N] for 3-D f32 buffers of any
/// shapes (attention's products) with the same micro-kernel, reading w in
/// place; threads over (batch, output tile) when the product is large (a
/// run-time test: B*M*N*K >= 16 * parallelMinWeights).
void emitBatchedFloatMatmul(mlir::OpBuilder &b, mlir::Location loc,
                            mlir::Value x, mlir::Value w, mlir::Value out,
                            const CPUKernelOptions &options);

} // namespace qforge::codegen

#endif // QFORGE_CODEGEN_CPUKERNELS_H
