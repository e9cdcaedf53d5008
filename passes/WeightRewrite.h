//===- WeightRewrite.h - Finding and rewriting linear weights ----*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// Shared by the quantization passes: they find the constant weights of linear
// layers in graph IR, hand them (as N x K row-major matrices) to lib/quant, and
// replace them with qf.dequantize of the resulting codes.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_PASSES_WEIGHTREWRITE_H
#define QFORGE_PASSES_WEIGHTREWRITE_H

#include "dialects/qf/QFDialect.h"
#include "qforge/Quant/Codebook.h"
#include "qforge/Quant/Outliers.h"
#include "qforge/Quant/RTN.h"
#include "qforge/Quant/Scheme.h"

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Tosa/IR/TosaOps.h"
#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinAttributes.h"

#include <optional>
#include <string>
#include <vector>

namespace qforge {

/// A linear layer `x · W` of graph IR whose weight W[K, N] is a float constant.
struct LinearWeight {
  mlir::tosa::MatMulOp matmul;
  int64_t rows = 0; // N, output channels
  int64_t cols = 0; // K, input channels
  std::string name;
  /// The f32 constant holding the weight as ONNX stores it, K x N.
  mlir::Attribute constant;
  /// The op defining it.
  mlir::Operation *constOp = nullptr;
  /// The weights qf-split-outliers moved out of the constant (which then
  /// holds the dense remainder, zero at these positions), N x K in CSR form
  /// with their original values; read from the constant's `qf.outliers`.
  std::optional<quant::SparseRows> outliers;
  /// Later linear layers that read the same weight constant (an exporter's
  /// deduplicated initializer, tied weights). The weight is quantized once,
  /// on the statistics of every use, and each use reads the result.
  std::vector<mlir::tosa::MatMulOp> sharers;

  /// `matmul`, then the sharers.
  std::vector<mlir::tosa::MatMulOp> uses() const;

  /// The weight as an N x K row-major matrix (one row per output channel),
  /// read from `constant` on each call: passes load one layer at a time so
  /// that a model's float weights are never copied all at once.
  std::vector<float> load() const;
};

/// Finds the linear layers of `func` with constant f32 weights, in program
/// order (without reading the weights); one entry per weight constant, with
/// the other matmuls that read it as its sharers.
std::vector<LinearWeight> findConstantLinears(mlir::func::FuncOp func);

/// The stage of each of `linears` (the constant linears of `func`, in that
/// order): the largest number of constant linears on a dataflow path into
/// its input. Stage-0 linears read no output of another constant (float)
/// linear, so their inputs are final once the linears before them are
/// quantized: sequential calibration measures and quantizes one stage at a
/// time (q/k/v, then o, then gate/up, then down, then the next block).
std::vector<unsigned> linearStages(mlir::func::FuncOp func,
                                   llvm::ArrayRef<LinearWeight> linears);

/// Creates a `tosa.const` holding `data` as a dense_resource blob named after
/// `name`, with `name` also in its `qf.name` attribute.
template <typename T>
mlir::Value createResourceConst(mlir::OpBuilder &b, mlir::Location loc,
                                llvm::StringRef name, llvm::ArrayRef<T> data,
                                llvm::ArrayRef<int64_t> shape,
                                mlir::Type elementType);

/// The quantized form of a weight: qf operands and scheme, and the CSR
/// operands of its sparse outliers (null when it has none).
struct QuantizedWeight {
  qf::SchemeAttr scheme;
  mlir::Value codes, scales, zeroPoints, lut;
  mlir::Value rowPtr, colIdx, values;
};

/// Replaces the weight operand of `linear.matmul` (and of its sharers) with
/// the decoded quantized weight: qf.dequantize (→ qf.sparse_outliers) →
/// tosa.transpose → tosa.reshape to [1, K, N]. Returns the dequantize op,
/// tagged with `qf.layer`. Dead weight constants are erased.
qf::DequantizeOp replaceWithDequantized(mlir::OpBuilder &b,
                                        LinearWeight &linear,
                                        const QuantizedWeight &q);

/// Erases the op defining `v` when nothing reads it, and then, through a
/// tosa.reshape, the op defining the reshape's input (a dead weight or bias
/// constant and the reshape to its operand shape).
void eraseIfDead(mlir::Value v);

/// Replaces `linear`'s weight with the affine quantized matrix `q` (codes,
/// scales and zero points become resource constants) and records on the
/// qf.dequantize the weight error ‖W − Ŵ‖/‖W‖ against `weight` (N x K,
/// `qf.weight_error`) and, when the matmul carries `qf.calib`, the output
/// error ‖XWᵀ − XŴᵀ‖/‖XWᵀ‖ on the calibration activations
/// (`qf.output_error`).
qf::DequantizeOp rewriteAffine(mlir::OpBuilder &b, LinearWeight &linear,
                               qf::SchemeAttr scheme,
                               const quant::AffineQuantized &q,
                               llvm::ArrayRef<float> weight);

/// Replaces `linear`'s weight with the codebook-quantized matrix `q` (codes
/// and table become resource constants), recording errors as rewriteAffine.
qf::DequantizeOp rewriteCodebook(mlir::OpBuilder &b, LinearWeight &linear,
                                 const quant::CodebookQuantized &q,
                                 llvm::ArrayRef<float> weight);

/// The `qf.outliers` dictionary holding `s` (original values); `name` names
/// its blobs.
mlir::DictionaryAttr makeOutliersAttr(mlir::Builder &b, llvm::StringRef name,
                                      const quant::SparseRows &s);

/// The diagonal of a linear's XᵀX / rows (K values), or failure with a
/// message naming the layer when it has no calibration statistics.
mlir::FailureOr<std::vector<float>>
calibrationDiagonal(const LinearWeight &linear, std::string &error);

/// A linear's Fisher information (`qf.fisher` on its weight constant, K x N
/// as the weight) as an N x K row-major matrix, or failure with a message.
mlir::FailureOr<std::vector<float>>
fisherInformation(const LinearWeight &linear, std::string &error);

/// XᵀX / rows from a linear's `qf.calib` (K x K, double), or failure with
/// a message naming the layer when it has no calibration statistics.
mlir::FailureOr<std::vector<double>> calibrationGram(const LinearWeight &linear,
                                                     std::string &error);

/// The `qf.calib` dictionary of a linear whose inputs had (1/rows) XᵀX =
/// `xtx` (K x K) and mean |x| = `meanAbs`; `name` names the xtx blob.
mlir::DictionaryAttr makeCalibAttr(mlir::Builder &b, llvm::StringRef name,
                                   int64_t rows, llvm::ArrayRef<float> xtx,
                                   llvm::ArrayRef<float> meanAbs);

/// The rows and mean |x| of a linear's `qf.calib` (which calibrationGram
/// has checked), for AWQ.
int64_t calibrationRows(const LinearWeight &linear);
std::vector<float> calibrationMeanAbs(const LinearWeight &linear);

/// The f32 contents of a dense or dense_resource constant; empty for other
/// attributes.
std::vector<float> readFloatsOf(mlir::Attribute attr);

/// The values of the constant behind `v` (possibly through a tosa.reshape),
/// when it is an f32 dense or dense_resource constant of static shape.
std::optional<std::vector<float>> constantFloats(mlir::Value v);

/// The lib/quant view of an affine qf scheme.
quant::Scheme toQuantScheme(qf::SchemeAttr scheme);

/// Makes `name` usable as a resource blob key.
std::string sanitizeName(llvm::StringRef name);

} // namespace qforge

#endif // QFORGE_PASSES_WEIGHTREWRITE_H
