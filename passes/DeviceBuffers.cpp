//===- DeviceBuffers.cpp - Device memory for the buffers GPU code uses ----===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// qf-device-buffers, after the kernels are formed (gpu.launch regions and
// gpu.launch_func): host code keeps allocations, frees, copies and launches.
//
//  - memref.alloc -> gpu.alloc when the buffer, or a view of it (through
//    view-like ops and the results of scf.if/scf.for that yield it), is used
//    inside a gpu.launch body, by a gpu.launch_func, by a copy or by a return
//    (results go back to the caller as device buffers). Its frees become
//    gpu.dealloc. Other buffers (shape operands of memref.reshape, the
//    pointer lists of the deallocation helper) are host bookkeeping and stay.
//  - memref.copy between identity layouts -> gpu.memcpy. A strided side
//    would lower to one flat copy from the base pointer, so it is refused
//    (qf-lower-strided-copies turns such copies into kernels before).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Interfaces/ViewLikeInterface.h"

namespace qforge {
#define GEN_PASS_DEF_DEVICEBUFFERSPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;

namespace {
/// Whether device code may touch the buffer `root`.
bool usedByDevice(Value root) {
  SmallVector<Value> work{root};
  DenseSet<Value> seen;
  while (!work.empty()) {
    Value v = work.pop_back_val();
    if (!seen.insert(v).second)
      continue;
    for (OpOperand &use : v.getUses()) {
      Operation *user = use.getOwner();
      if (user->getParentOfType<gpu::LaunchOp>() ||
          isa<gpu::LaunchFuncOp, gpu::MemcpyOp, memref::CopyOp, func::ReturnOp>(
              user))
        return true;
      if (auto view = dyn_cast<ViewLikeOpInterface>(user)) {
        if (view.getViewSource() == v)
          work.push_back(view->getResult(0));
        continue;
      }
      if (isa<memref::CastOp>(user)) {
        work.push_back(user->getResult(0));
        continue;
      }
      if (isa<scf::YieldOp>(user)) {
        Operation *parent = user->getParentOp();
        if (isa<scf::IfOp, scf::ForOp>(parent))
          work.push_back(parent->getResult(use.getOperandNumber()));
        if (auto loop = dyn_cast<scf::ForOp>(parent))
          work.push_back(loop.getRegionIterArgs()[use.getOperandNumber()]);
        continue;
      }
      if (auto loop = dyn_cast<scf::ForOp>(user)) {
        if (use.getOperandNumber() >= loop.getNumControlOperands()) {
          unsigned i = use.getOperandNumber() - loop.getNumControlOperands();
          work.push_back(loop.getRegionIterArgs()[i]);
          work.push_back(loop.getResult(i));
        }
        continue;
      }
    }
  }
  return false;
}

/// The allocation `v` comes from through casts and views, if any.
memref::AllocOp allocOf(Value v) {
  while (Operation *def = v.getDefiningOp()) {
    if (auto alloc = dyn_cast<memref::AllocOp>(def))
      return alloc;
    if (auto view = dyn_cast<ViewLikeOpInterface>(def))
      v = view.getViewSource();
    else if (auto cast = dyn_cast<memref::CastOp>(def))
      v = cast.getSource();
    else
      break;
  }
  return {};
}

struct DeviceBuffersPass
    : public qforge::impl::DeviceBuffersPassBase<DeviceBuffersPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto onHost = [](Operation *op) {
      return !op->getParentOfType<gpu::GPUModuleOp>() &&
             !op->getParentOfType<gpu::LaunchOp>();
    };
    SmallVector<memref::AllocOp> allocs;
    SmallVector<memref::CopyOp> copies;
    SmallVector<memref::DeallocOp> deallocs;
    module.walk([&](Operation *op) {
      if (!onHost(op))
        return;
      if (auto alloc = dyn_cast<memref::AllocOp>(op)) {
        if (usedByDevice(alloc.getResult()))
          allocs.push_back(alloc);
      } else if (auto copy = dyn_cast<memref::CopyOp>(op)) {
        copies.push_back(copy);
      } else if (auto dealloc = dyn_cast<memref::DeallocOp>(op)) {
        deallocs.push_back(dealloc);
      }
    });

    OpBuilder b(&getContext());
    for (memref::CopyOp copy : copies) {
      auto source = cast<MemRefType>(copy.getSource().getType());
      auto target = cast<MemRefType>(copy.getTarget().getType());
      if (!source.getLayout().isIdentity() ||
          !target.getLayout().isIdentity()) {
        copy.emitOpError("between strided buffers has no device copy; "
                         "qf-lower-strided-copies makes it a kernel");
        return signalPassFailure();
      }
      b.setInsertionPoint(copy);
      gpu::MemcpyOp::create(b, copy.getLoc(), Type(), ValueRange{},
                            copy.getTarget(), copy.getSource());
      copy.erase();
    }
    for (memref::AllocOp alloc : allocs) {
      b.setInsertionPoint(alloc);
      auto dev = gpu::AllocOp::create(
          b, alloc.getLoc(), alloc.getType(), Type(), ValueRange{},
          alloc.getDynamicSizes(), alloc.getSymbolOperands());
      alloc.replaceAllUsesWith(dev.getMemref());
      alloc.erase();
    }
    // A free stays on the host when its buffer comes from a host allocation;
    // every other buffer host code frees is a device buffer.
    for (memref::DeallocOp dealloc : deallocs) {
      if (allocOf(dealloc.getMemref()))
        continue; // a host buffer
      b.setInsertionPoint(dealloc);
      gpu::DeallocOp::create(b, dealloc.getLoc(), Type(), ValueRange{},
                             dealloc.getMemref());
      dealloc.erase();
    }
  }
};
} // namespace
