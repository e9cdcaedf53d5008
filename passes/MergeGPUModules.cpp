//===- MergeGPUModules.cpp - One gpu.module for all kernels ---------------===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// qf-merge-gpu-modules: gpu-kernel-outlining gives every kernel a gpu.module
// of its own; each would become a PTX module of its own, loaded separately.
// The kernels move into @qf_kernels, or else the first gpu.module (a
// clashing name gets a suffix), and every gpu.launch_func is pointed at its
// new place.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/IR/SymbolTable.h"

namespace qforge {
#define GEN_PASS_DEF_MERGEGPUMODULESPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;

namespace {
struct MergeGPUModulesPass
    : public qforge::impl::MergeGPUModulesPassBase<MergeGPUModulesPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto gpuModules = llvm::to_vector(module.getOps<gpu::GPUModuleOp>());
    if (gpuModules.size() < 2)
      return;
    // The generated kernels' module when there is one, else the first.
    gpu::GPUModuleOp target = gpuModules.front();
    for (gpu::GPUModuleOp m : gpuModules)
      if (m.getName() == "qf_kernels")
        target = m;
    SymbolTable targetSymbols(target);
    // (old module, old function) -> new function name.
    llvm::DenseMap<std::pair<StringAttr, StringAttr>, StringAttr> moved;
    for (gpu::GPUModuleOp source : gpuModules) {
      if (source == target)
        continue;
      for (Operation &op :
           llvm::make_early_inc_range(source.getBody()->getOperations())) {
        auto symbol = dyn_cast<SymbolOpInterface>(op);
        if (!symbol)
          continue;
        StringAttr oldName = symbol.getNameAttr();
        op.remove();
        StringAttr newName = targetSymbols.insert(&op);
        moved[{source.getNameAttr(), oldName}] = newName;
      }
      source.erase();
    }
    module.walk([&](gpu::LaunchFuncOp launch) {
      SymbolRefAttr kernel = launch.getKernel();
      auto it =
          moved.find({kernel.getRootReference(), kernel.getLeafReference()});
      if (it == moved.end())
        return;
      launch.setKernelAttr(SymbolRefAttr::get(
          target.getNameAttr(), {FlatSymbolRefAttr::get(it->second)}));
    });
  }
};
} // namespace
