//===- Grad.h - Reverse-mode differentiation of graph IR --------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// qf-grad's gradient builder, shared with qf-fisher.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_PASSES_GRAD_H
#define QFORGE_PASSES_GRAD_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "llvm/ADT/StringRef.h"

namespace qforge {

/// The scalar that a gradient function differentiates.
enum class GradLoss {
  /// Mean next-token cross-entropy of result 0 (logits [1, T, V]) against
  /// argument 0 (tokens [1, T]) over the T - 1 predictions.
  CrossEntropy,
  /// Sum of every element of every f32 result.
  Sum,
};

/// Builds `@name` next to `entry` (static shapes, TOSA): the same arguments,
/// results the loss (tensor<1xf32>) and d loss / d W for each constant linear
/// weight of `entry`, in findConstantLinears order, each with its constant's
/// shape. Emits an error at the offending op and fails for a dynamic shape or
/// an active op without an adjoint rule.
mlir::FailureOr<mlir::func::FuncOp>
buildGradientFunction(mlir::func::FuncOp entry, GradLoss loss,
                      llvm::StringRef name);

} // namespace qforge

#endif // QFORGE_PASSES_GRAD_H
