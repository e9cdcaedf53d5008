//===- FusedMatmulKernel.h - Kernel bodies for qf.fused_matmul ---*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// The arithmetic of one output element of qf.fused_matmul, emitted as
// scf/arith/memref IR over buffers. The CPU lowering wraps it in parallel
// loops; the GPU kernel generator wraps it in a gpu.func indexed by thread.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_CODEGEN_FUSEDMATMULKERNEL_H
#define QFORGE_CODEGEN_FUSEDMATMULKERNEL_H

#include "dialects/qf/QFDialect.h"

#include "mlir/IR/Builders.h"

namespace qforge::codegen {

/// The memref operands of a fused matmul with x and the output flattened to 2-D
/// ([M, K] and [M, N]). Optional operands are null.
struct FusedMatmulBuffers {
  qf::SchemeAttr scheme;
  int64_t rows = 0, cols = 0; // N, K
  mlir::Value x, codes, scales, zeroPoints, lut, rowPtr, colIdx, values, bias,
      out;

  /// All non-null buffers, in a fixed order (the kernel's parameter order).
  llvm::SmallVector<mlir::Value> all() const;
  /// Rebinds the non-null buffers, in `all()` order, to `values`.
  FusedMatmulBuffers rebind(mlir::ValueRange values) const;
};

/// The fused matmuls under `root`, in walk order, for a lowering that needs
/// them in memref form; a tensor-form one gets the error "must be bufferized
/// before lowering to <loweringTo>" and the result is failure.
mlir::FailureOr<llvm::SmallVector<qf::FusedMatmulOp>>
collectBufferizedFusedMatmuls(mlir::Operation *root,
                              llvm::StringRef loweringTo);

/// Collects the buffers of a memref-form fused matmul, inserting
/// memref.collapse_shape (or expand_shape for rank 1) before it so x and the
/// output are 2-D.
FusedMatmulBuffers getFlattenedBuffers(mlir::OpBuilder &b,
                                       qf::FusedMatmulOp op);

/// Code j (an i32) of a unit of packed words (`words`, i32 values): bits
/// [j*bits, (j+1)*bits), continuing into the next word where it straddles.
mlir::Value emitUnitCode(mlir::OpBuilder &b, mlir::Location loc,
                         llvm::ArrayRef<mlir::Value> words, int64_t j,
                         unsigned bits);

/// Emits the computation of out[m, n] (including outliers and bias) and stores
/// it.
void emitOutputElement(mlir::OpBuilder &b, mlir::Location loc,
                       const FusedMatmulBuffers &buf, mlir::Value m,
                       mlir::Value n);

} // namespace qforge::codegen

#endif // QFORGE_CODEGEN_FUSEDMATMULKERNEL_H
