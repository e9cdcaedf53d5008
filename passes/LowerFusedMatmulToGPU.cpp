//===- LowerFusedMatmulToGPU.cpp - GPU kernels for fused matmul --*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "qforge/Codegen/FusedMatmulKernel.h"

#include "mlir/IR/SymbolTable.h"

namespace qforge {
#define GEN_PASS_DEF_LOWERFUSEDMATMULTOGPUPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;
using namespace qforge;

namespace {
constexpr int64_t kThreadsPerBlock = 128;

struct LowerFusedMatmulToGPUPass
    : public qforge::impl::LowerFusedMatmulToGPUPassBase<
          LowerFusedMatmulToGPUPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    SmallVector<qf::FusedMatmulOp> ops;
    module.walk([&](qf::FusedMatmulOp op) { ops.push_back(op); });

    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                    UnitAttr::get(ctx));
    OpBuilder b(ctx);
    gpu::GPUModuleOp kernels;
    if (!ops.empty()) {
      b.setInsertionPointToEnd(module.getBody());
      kernels = gpu::GPUModuleOp::create(b, module.getLoc(), "qf_kernels");
    }
    SymbolTable symbols(kernels ? kernels.getOperation()
                                : module.getOperation());
    for (qf::FusedMatmulOp op : ops) {
      if (op.getResult()) {
        op.emitOpError("must be bufferized before lowering to GPU kernels");
        return signalPassFailure();
      }
      if (failed(lowerOne(b, op, kernels, symbols)))
        return signalPassFailure();
    }
  }

  /// Generates the kernel of `op` and replaces `op` with its launch.
  LogicalResult lowerOne(OpBuilder &b, qf::FusedMatmulOp op,
                         gpu::GPUModuleOp kernels, SymbolTable &symbols) {
    Location loc = op.getLoc();
    codegen::FusedMatmulBuffers buf = codegen::getFlattenedBuffers(b, op);
    SmallVector<Value> args = buf.all();
    for (Value v : args) {
      auto type = cast<MemRefType>(v.getType());
      if (!type.getLayout().isIdentity())
        return op.emitOpError("GPU lowering needs contiguous buffers");
    }

    // The kernel: one thread per output element; x indexes output channels, y
    // rows.
    OpBuilder kb(kernels.getBodyRegion());
    kb.setInsertionPointToEnd(kernels.getBody());
    auto fnType = kb.getFunctionType(ValueRange(args).getTypes(), {});
    auto fn = gpu::GPUFuncOp::create(kb, loc, "fused_matmul", fnType);
    fn->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), kb.getUnitAttr());
    symbols.insert(fn);
    Block &body = fn.getBody().front();
    kb.setInsertionPointToStart(&body);
    codegen::FusedMatmulBuffers kbuf = buf.rebind(body.getArguments());
    Value bid = gpu::BlockIdOp::create(kb, loc, gpu::Dimension::x);
    Value bdim = gpu::BlockDimOp::create(kb, loc, gpu::Dimension::x);
    Value tid = gpu::ThreadIdOp::create(kb, loc, gpu::Dimension::x);
    Value n = arith::AddIOp::create(
        kb, loc, arith::MulIOp::create(kb, loc, bid, bdim), tid);
    Value m = gpu::BlockIdOp::create(kb, loc, gpu::Dimension::y);
    Value inRange = arith::CmpIOp::create(
        kb, loc, arith::CmpIPredicate::ult, n,
        arith::ConstantIndexOp::create(kb, loc, buf.rows));
    auto guard = scf::IfOp::create(kb, loc, inRange, /*withElseRegion=*/false);
    {
      OpBuilder::InsertionGuard g(kb);
      kb.setInsertionPointToStart(guard.thenBlock());
      codegen::emitOutputElement(kb, loc, kbuf, m, n);
    }
    gpu::ReturnOp::create(kb, loc);

    // The launch.
    b.setInsertionPoint(op);
    auto c = [&](int64_t v) {
      return arith::ConstantIndexOp::create(b, loc, v);
    };
    int64_t gridX = (buf.rows + kThreadsPerBlock - 1) / kThreadsPerBlock;
    Value rowsM = memref::DimOp::create(b, loc, buf.x, 0);
    gpu::LaunchFuncOp::create(b, loc, fn,
                              gpu::KernelDim3{c(gridX), rowsM, c(1)},
                              gpu::KernelDim3{c(kThreadsPerBlock), c(1), c(1)},
                              /*dynamicSharedMemorySize=*/Value(), args);
    op.erase();
    return success();
  }
};
} // namespace
