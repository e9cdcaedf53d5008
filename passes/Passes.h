//===- Passes.h - qforge passes ----------------------------------*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_PASSES_PASSES_H
#define QFORGE_PASSES_PASSES_H

#include "dialects/qf/QFDialect.h"

#include "mlir/Dialect/Affine/IR/AffineOps.h"
#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/Dialect/LLVMIR/LLVMDialect.h"
#include "mlir/Dialect/LLVMIR/NVVMDialect.h"
#include "mlir/Dialect/Math/IR/Math.h"
#include "mlir/Dialect/MemRef/IR/MemRef.h"
#include "mlir/Dialect/SCF/IR/SCF.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tosa/IR/TosaOps.h"
#include "mlir/Dialect/Vector/IR/VectorOps.h"
#include "mlir/Pass/Pass.h"
#include "mlir/Pass/PassOptions.h"

#include <memory>
#include <string>

namespace qforge {

#define GEN_PASS_DECL
#include "passes/Passes.h.inc"

#define GEN_PASS_REGISTRATION
#include "passes/Passes.h.inc"

/// Options of the lowering pipelines (graph IR with qf ops → LLVM dialect).
struct LoweringOptions : public mlir::PassPipelineOptions<LoweringOptions> {
  Option<std::string> target{
      *this, "target",
      llvm::cl::desc("cpu, or cuda for host code launching kernels"),
      llvm::cl::init("cpu")};
  Option<std::string> chip{*this, "chip",
                           llvm::cl::desc("NVIDIA architecture for cuda"),
                           llvm::cl::init("sm_80")};
  Option<int64_t> vectorWidth{
      *this, "vector-width",
      llvm::cl::desc("cpu: f32 lanes of the kernels' vectors (16: AVX-512, "
                     "8: AVX2)"),
      llvm::cl::init(16)};
  Option<int64_t> gemvMaxRows{
      *this, "gemv-max-rows",
      llvm::cl::desc("cpu: the largest number of activation rows that takes "
                     "the GEMV kernel"),
      llvm::cl::init(4)};
  Option<bool> int8Activations{
      *this, "int8-activations",
      llvm::cl::desc("cpu: GEMV with int8 activations and vpdpbusd (AVX-512 "
                     "VNNI)"),
      llvm::cl::init(false)};
  Option<bool> emulateCuda{
      *this, "emulate-cuda",
      llvm::cl::desc("cpu: compute as the CUDA target's kernels do where "
                     "their arithmetic differs (the warp GEMV's f16 "
                     "activations and products, reductions across a warp), "
                     "to test their numerics without a GPU"),
      llvm::cl::init(false)};
};

/// Graph IR (TOSA + qf, weights as arguments) → LLVM dialect for the CPU, or
/// host LLVM dialect plus a gpu.binary holding PTX for CUDA.
void buildLoweringPipeline(mlir::OpPassManager &pm,
                           const LoweringOptions &options);

/// Registers qforge's passes and pipelines (for qforge-opt and the compiler).
void registerPasses();

/// Registers the dialects and interfaces qforge's IR uses.
void registerDialects(mlir::DialectRegistry &registry);

} // namespace qforge

#endif // QFORGE_PASSES_PASSES_H
