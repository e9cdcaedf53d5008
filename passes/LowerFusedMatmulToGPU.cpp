//===- LowerFusedMatmulToGPU.cpp - GPU kernels for fused matmul --*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "qforge/Codegen/FusedMatmulKernel.h"
#include "qforge/Codegen/WarpGemvKernel.h"

#include "mlir/IR/SymbolTable.h"
#include "llvm/Support/FormatVariadic.h"

namespace qforge {
#define GEN_PASS_DEF_LOWERFUSEDMATMULTOGPUPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;
using namespace qforge;

namespace {
constexpr int64_t kThreadsPerBlock = 128;
// Warp GEMV: 8 warps per block, one output channel each.
constexpr int64_t kGemvWarps = 8;

struct LowerFusedMatmulToGPUPass
    : public qforge::impl::LowerFusedMatmulToGPUPassBase<
          LowerFusedMatmulToGPUPass> {
  void runOnOperation() override {
    ModuleOp module = getOperation();
    MLIRContext *ctx = &getContext();
    FailureOr<SmallVector<qf::FusedMatmulOp>> ops =
        codegen::collectBufferizedFusedMatmuls(module, "GPU kernels");
    if (failed(ops))
      return signalPassFailure();

    module->setAttr(gpu::GPUDialect::getContainerModuleAttrName(),
                    UnitAttr::get(ctx));
    OpBuilder b(ctx);
    gpu::GPUModuleOp kernels;
    if (!ops->empty()) {
      b.setInsertionPointToEnd(module.getBody());
      kernels = gpu::GPUModuleOp::create(b, module.getLoc(), "qf_kernels");
    }
    SymbolTable symbols(kernels ? kernels.getOperation()
                                : module.getOperation());
    for (qf::FusedMatmulOp op : *ops) {
      if (failed(lowerOne(b, op, kernels, symbols)))
        return signalPassFailure();
    }
  }

  /// Generates the kernel of `op` and replaces `op` with its launch.
  LogicalResult lowerOne(OpBuilder &b, qf::FusedMatmulOp op,
                         gpu::GPUModuleOp kernels, SymbolTable &symbols) {
    codegen::FusedMatmulBuffers buf = codegen::getFlattenedBuffers(b, op);
    SmallVector<Value> args = buf.all();
    for (Value v : args) {
      auto type = cast<MemRefType>(v.getType());
      if (!type.getLayout().isIdentity())
        return op.emitOpError("GPU lowering needs contiguous buffers");
    }

    if (codegen::canUseWarpGemv(buf))
      emitWarpGemv(b, op, buf, args, kernels, symbols);
    else
      emitPerElement(b, op, buf, args, kernels, symbols);
    op.erase();
    return success();
  }

  static gpu::GPUFuncOp createKernel(OpBuilder &kb, Location loc,
                                     StringRef name, ValueRange args,
                                     TypeRange workgroup,
                                     SymbolTable &symbols) {
    auto fnType = kb.getFunctionType(args.getTypes(), {});
    auto fn = gpu::GPUFuncOp::create(kb, loc, name, fnType, workgroup);
    fn->setAttr(gpu::GPUDialect::getKernelFuncAttrName(), kb.getUnitAttr());
    symbols.insert(fn);
    return fn;
  }

  /// Launches `fn` before `op`: grid x covers the output channels,
  /// `channelsPerBlock` per block; grid y the rows of x, `rowsPerBlock` per
  /// block.
  static void launch(OpBuilder &b, qf::FusedMatmulOp op, gpu::GPUFuncOp fn,
                     const codegen::FusedMatmulBuffers &buf,
                     int64_t channelsPerBlock, int64_t rowsPerBlock,
                     int64_t threads, ArrayRef<Value> args) {
    Location loc = op.getLoc();
    b.setInsertionPoint(op);
    auto c = [&](int64_t v) {
      return arith::ConstantIndexOp::create(b, loc, v);
    };
    int64_t gridX = (buf.rows + channelsPerBlock - 1) / channelsPerBlock;
    Value rowsM = memref::DimOp::create(b, loc, buf.x, 0);
    if (rowsPerBlock > 1)
      rowsM = arith::CeilDivUIOp::create(b, loc, rowsM, c(rowsPerBlock));
    gpu::LaunchFuncOp::create(b, loc, fn,
                              gpu::KernelDim3{c(gridX), rowsM, c(1)},
                              gpu::KernelDim3{c(threads), c(1), c(1)},
                              /*dynamicSharedMemorySize=*/Value(), args);
  }

  /// The generic kernel (every scheme): one thread per output element.
  void emitPerElement(OpBuilder &b, qf::FusedMatmulOp op,
                      const codegen::FusedMatmulBuffers &buf,
                      ArrayRef<Value> args, gpu::GPUModuleOp kernels,
                      SymbolTable &symbols) {
    Location loc = op.getLoc();
    // One thread per output element; x indexes output channels, y
    // rows.
    OpBuilder kb(kernels.getBodyRegion());
    kb.setInsertionPointToEnd(kernels.getBody());
    auto fn = createKernel(kb, loc, "fused_matmul", args, {}, symbols);
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

    launch(b, op, fn, buf, kThreadsPerBlock, 1, kThreadsPerBlock, args);
  }

  /// The warp GEMV: a block of 8 warps takes a tile of rows of x (affine
  /// schemes first stage it in shared memory as f16), each warp computes one
  /// output channel for the rows of the tile.
  void emitWarpGemv(OpBuilder &b, qf::FusedMatmulOp op,
                    const codegen::FusedMatmulBuffers &buf,
                    ArrayRef<Value> args, gpu::GPUModuleOp kernels,
                    SymbolTable &symbols) {
    Location loc = op.getLoc();
    MLIRContext *ctx = b.getContext();
    int64_t tileRows = codegen::warpGemvTileRows(buf);
    OpBuilder kb(kernels.getBodyRegion());
    kb.setInsertionPointToEnd(kernels.getBody());
    auto shared = gpu::AddressSpaceAttr::get(ctx, gpu::AddressSpace::Workgroup);
    bool stagesX = codegen::warpGemvStagesX(buf);
    SmallVector<Type> workgroup;
    if (stagesX)
      workgroup.push_back(codegen::stagedXType(buf, tileRows, shared));
    auto fn = createKernel(kb, loc, stagesX ? "fused_gemv" : "fused_lut_gemv",
                           args, workgroup, symbols);
    Block &body = fn.getBody().front();
    kb.setInsertionPointToStart(&body);
    codegen::FusedMatmulBuffers kbuf =
        buf.rebind(body.getArguments().take_front(args.size()));
    Value xs = stagesX ? Value(fn.getWorkgroupAttributions().front()) : Value();
    auto kc = [&](int64_t v) {
      return arith::ConstantIndexOp::create(kb, loc, v);
    };
    int64_t threads = kGemvWarps * codegen::kWarpLanes;
    Value tid = gpu::ThreadIdOp::create(kb, loc, gpu::Dimension::x);
    Value m0 = arith::MulIOp::create(
        kb, loc, gpu::BlockIdOp::create(kb, loc, gpu::Dimension::y),
        kc(tileRows));
    Value warp = arith::DivUIOp::create(kb, loc, tid, kc(codegen::kWarpLanes));
    Value lane = arith::RemUIOp::create(kb, loc, tid, kc(codegen::kWarpLanes));
    Value bid = gpu::BlockIdOp::create(kb, loc, gpu::Dimension::x);
    Value n = arith::AddIOp::create(
        kb, loc, arith::MulIOp::create(kb, loc, bid, kc(kGemvWarps)), warp);
    codegen::WarpGemvTarget target;
    target.codeAlignment = 16;
    target.maskOr = [](OpBuilder &ab, Location al, Value word,
                       uint32_t mask) -> Value {
      // 0xEA: (a & b) | c.
      std::string lop3 =
          llvm::formatv("lop3.b32 $0, $1, {0:x8}, 0x64006400, 0xEA;", mask);
      return LLVM::InlineAsmOp::create(
                 ab, al, ab.getI32Type(), ValueRange{word}, lop3, "=r,r",
                 /*has_side_effects=*/false, /*is_align_stack=*/false,
                 LLVM::tailcallkind::TailCallKind::None,
                 LLVM::AsmDialectAttr::get(ab.getContext(),
                                           LLVM::AsmDialect::AD_ATT),
                 ArrayAttr())
          .getResult(0);
    };
    // The branch on the row count is the same for the whole grid.
    codegen::emitForTileRows(
        kb, loc, kbuf, tileRows, [&](OpBuilder &tb, int64_t rows) {
          if (stagesX) {
            codegen::emitStageX(
                tb, loc, kbuf, m0, rows, xs, tid,
                arith::ConstantIndexOp::create(tb, loc, threads));
            gpu::BarrierOp::create(tb, loc);
          }
          // The condition is the same for all lanes of a warp, so the
          // shuffles below always run with the whole warp.
          Value inRange = arith::CmpIOp::create(
              tb, loc, arith::CmpIPredicate::ult, n,
              arith::ConstantIndexOp::create(tb, loc, buf.rows));
          auto guard =
              scf::IfOp::create(tb, loc, inRange, /*withElseRegion=*/false);
          OpBuilder::InsertionGuard g(tb);
          tb.setInsertionPointToStart(guard.thenBlock());
          SmallVector<Value> totals;
          for (Value part : codegen::emitLanePartials(tb, loc, kbuf, target, xs,
                                                      m0, rows, n, lane))
            totals.push_back(codegen::emitButterfly(
                tb, loc, part, [&](Value v, int32_t offset) {
                  return codegen::emitWarpShuffleXor(tb, loc, v, offset);
                }));
          Value first =
              arith::CmpIOp::create(tb, loc, arith::CmpIPredicate::eq, lane,
                                    arith::ConstantIndexOp::create(tb, loc, 0));
          auto store =
              scf::IfOp::create(tb, loc, first, /*withElseRegion=*/false);
          tb.setInsertionPointToStart(store.thenBlock());
          codegen::emitStoreRows(tb, loc, kbuf, m0, n, totals);
        });
    gpu::ReturnOp::create(kb, loc);

    launch(b, op, fn, buf, kGemvWarps, tileRows, threads, args);
  }
};
} // namespace
