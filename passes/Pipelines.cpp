//===- Pipelines.cpp - qforge pass pipelines and registration ---*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Conversion/Passes.h"
#include "mlir/Dialect/Bufferization/Pipelines/Passes.h"
#include "mlir/Dialect/Bufferization/Transforms/Passes.h"
#include "mlir/Dialect/GPU/Pipelines/Passes.h"
#include "mlir/Dialect/GPU/Transforms/Passes.h"
#include "mlir/Dialect/Linalg/Passes.h"
#include "mlir/Dialect/MemRef/Transforms/Passes.h"
#include "mlir/Dialect/Tosa/Transforms/Passes.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Pass/PassRegistry.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Transforms/Passes.h"

using namespace mlir;

void qforge::buildLoweringPipeline(OpPassManager &pm,
                                   const LoweringOptions &options) {
  // Graph IR → linalg on tensors (upstream TOSA lowering).
  OpPassManager &fpm = pm.nest<func::FuncOp>();
  fpm.addPass(tosa::createTosaToLinalgNamed());
  fpm.addPass(tosa::createTosaToLinalg());
  fpm.addPass(createTosaToArithPass());
  fpm.addPass(createTosaToTensorPass());
  pm.addPass(createCanonicalizerPass());
  // Elementwise chains (norms, activations, rotary embeddings, masks) fuse
  // into one loop nest each, once the dynamic-broadcast guards that split them
  // are gone.
  // Sizes are first rewritten in terms of the op operands they come from
  // (resolve-shaped-type-result-dims, CSE), so that equal sizes are one
  // value; each round exposes guards of the next ops in the chain.
  for (int round = 0; round < 2; ++round) {
    pm.addPass(memref::createResolveShapedTypeResultDimsPass());
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createCSEPass());
    pm.addNestedPass<func::FuncOp>(createDropSameSizeBroadcastsPass());
  }
  pm.addNestedPass<func::FuncOp>(createFuseElementwisePass());
  pm.addPass(createCanonicalizerPass());

  // Tensors → buffers. Results stay results: the entry returns buffers it owns
  // (upstream ownership-based deallocation clones any result that would alias
  // an argument), so outputs may have shapes known only at run time.
  bufferization::OneShotBufferizePassOptions bufferize;
  bufferize.bufferizeFunctionBoundaries = true;
  bufferize.functionBoundaryTypeConversion =
      bufferization::LayoutMapOption::IdentityLayoutMap;
  pm.addPass(bufferization::createOneShotBufferizePass(bufferize));
  bufferization::BufferDeallocationPipelineOptions dealloc;
  bufferization::buildBufferDeallocationPipeline(pm, dealloc);
  pm.addPass(createConvertBufferizationToMemRefPass());
  pm.addPass(createCanonicalizerPass());

  if (options.target == "cuda") {
    // Every op becomes a kernel: the fused matmuls by qforge's generator, the
    // rest (strided copies first made linalg.copy) as parallel loops tiled
    // into blocks of threads and mapped onto the grid by upstream passes.
    // Host code is left with allocations, copies and launches.
    pm.addPass(createLowerFusedMatmulToGPUPass());
    OpPassManager &gpm = pm.nest<func::FuncOp>();
    gpm.addPass(createLowerStridedCopiesPass());
    gpm.addPass(createConvertLinalgToParallelLoopsPass());
    gpm.addPass(createWarpReductionsPass());
    gpm.addPass(createTileLoopsForGPUPass());
    GpuMapParallelLoopsPassOptions mapping;
    mapping.mappingPolicyStr = "innermost-first";
    gpm.addPass(createGpuMapParallelLoopsPass(mapping));
    gpm.addPass(createConvertParallelLoopToGpuPass());
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createCSEPass());
    pm.addPass(createDeviceBuffersPass());
    pm.addPass(createGpuKernelOutliningPass());
    pm.addPass(createMergeGPUModulesPass());
    // gpu-to-llvm lowers allocations and copies in their asynchronous form.
    pm.addNestedPass<func::FuncOp>(createGpuAsyncRegionPass());
    gpu::GPUToNVVMPipelineOptions nvvm;
    nvvm.cubinChip = options.chip;
    nvvm.cubinFeatures = "+ptx80";
    nvvm.cubinFormat = "isa";
    gpu::buildLowerToNVVMPassPipeline(pm, nvvm);
    // The NVVM pipeline's host lowering leaves memref.reshape with a shape
    // operand (from Reshape nodes with run-time sizes).
    pm.addPass(createFinalizeMemRefToLLVMConversionPass());
    pm.addPass(createReconcileUnrealizedCastsPass());
    return;
  }

  if (options.emulateCuda) {
    // Testing aid: the CUDA kernels' arithmetic on the CPU. The warp GEMV's
    // matmuls by its own generator; the other fused matmuls by the scalar
    // generator of the GPU's per-element kernel; reductions across warps; the
    // rest as the CUDA target's parallel loops.
    pm.addNestedPass<func::FuncOp>(createEmulateWarpGemvPass());
    LowerFusedMatmulToLoopsPassOptions scalar;
    scalar.vectorize = false;
    pm.addNestedPass<func::FuncOp>(createLowerFusedMatmulToLoopsPass(scalar));
    OpPassManager &epm = pm.nest<func::FuncOp>();
    epm.addPass(createLowerStridedCopiesPass());
    epm.addPass(createConvertLinalgToParallelLoopsPass());
    WarpReductionsPassOptions warps;
    warps.emulate = true;
    epm.addPass(createWarpReductionsPass(warps));
  } else {
    LowerFusedMatmulToLoopsPassOptions kernels;
    kernels.vectorWidth = options.vectorWidth;
    kernels.int8Activations = options.int8Activations;
    kernels.gemvMaxRows = options.gemvMaxRows;
    pm.addNestedPass<func::FuncOp>(createLowerFusedMatmulToLoopsPass(kernels));
    LowerFloatMatmulPassOptions floatMatmul;
    floatMatmul.vectorWidth = options.vectorWidth;
    floatMatmul.gemvMaxRows = options.gemvMaxRows;
    pm.addNestedPass<func::FuncOp>(createLowerFloatMatmulPass(floatMatmul));
    pm.addNestedPass<func::FuncOp>(createOrderMatmulLoopsPass());
    pm.addNestedPass<func::FuncOp>(createLowerStridedCopiesPass());
    pm.addNestedPass<func::FuncOp>(createReassociateReductionsPass());
    pm.addNestedPass<func::FuncOp>(createParallelizeLinalgPass());
    pm.addNestedPass<func::FuncOp>(createConvertLinalgToLoopsPass());
  }
  pm.addNestedPass<func::FuncOp>(createApproximateMathPass());
  // scf.parallel → OpenMP threads (libomp). The canonicalizer inlines the
  // memref.alloca_scope that wraps each parallel body (kernels allocate their
  // scratch on the heap, so no scope keeps an alloca).
  pm.addPass(createConvertSCFToOpenMPPass());
  pm.addPass(createCanonicalizerPass());
  pm.addPass(createConvertVectorToSCFPass());
  pm.addPass(memref::createExpandStridedMetadataPass());
  pm.addPass(createLowerAffinePass());
  pm.addPass(createSCFToControlFlowPass());
  ConvertVectorToLLVMPassOptions vectorToLLVM;
  vectorToLLVM.reassociateFPReductions = true;
  pm.addPass(createConvertVectorToLLVMPass(vectorToLLVM));
  // Buffers come from the runtime's pool (_mlir_memref_to_llvm_alloc/free),
  // which reuses them from call to call instead of mapping fresh pages.
  FinalizeMemRefToLLVMConversionPassOptions memrefToLLVM;
  memrefToLLVM.useGenericFunctions = true;
  pm.addPass(createFinalizeMemRefToLLVMConversionPass(memrefToLLVM));
  pm.addPass(createArithToLLVMConversionPass());
  pm.addPass(createConvertMathToLLVMPass());
  pm.addPass(createUBToLLVMConversionPass());
  pm.addPass(createConvertFuncToLLVMPass());
  pm.addPass(createConvertOpenMPToLLVMPass());
  pm.addPass(createConvertControlFlowToLLVMPass());
  pm.addPass(createConvertIndexToLLVMPass());
  pm.addPass(createReconcileUnrealizedCastsPass());
}

void qforge::registerPasses() {
  registerQFPasses();
  PassPipelineRegistration<LoweringOptions>(
      "qf-lower",
      "Lower graph IR with qf ops to the LLVM dialect (cpu or cuda)",
      buildLoweringPipeline);
}

void qforge::registerDialects(DialectRegistry &registry) {
  registerAllDialects(registry);
  registerAllExtensions(registry);
  // gpu-module-to-binary translates kernels to LLVM IR inside the pass.
  registerAllToLLVMIRTranslations(registry);
  registry.insert<qf::QFDialect>();
  qf::registerBufferizableOpInterfaceExternalModels(registry);
}
