//===- LowerFloatMatmul.cpp - Float linear layers to the GEMM kernel -*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "qforge/Codegen/CPUKernels.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"

namespace qforge {
#define GEN_PASS_DEF_LOWERFLOATMATMULPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;
using namespace qforge;

namespace {

bool isContiguousF32(Value v) {
  auto t = dyn_cast<MemRefType>(v.getType());
  return t && t.getElementType().isF32() && t.getLayout().isIdentity();
}

/// A [1, M, D] (or [M, D]) memref viewed as [M, D].
Value rows2D(OpBuilder &b, Location loc, Value v) {
  auto t = cast<MemRefType>(v.getType());
  if (t.getRank() == 2)
    return v;
  return memref::CollapseShapeOp::create(
      b, loc, v, SmallVector<ReassociationIndices>{{0, 1}, {2}});
}

struct LowerFloatMatmulPass
    : public qforge::impl::LowerFloatMatmulPassBase<LowerFloatMatmulPass> {
  using Base::Base;

  void runOnOperation() override {
    SmallVector<linalg::LinalgOp> ops, batched;
    getOperation().walk([&](linalg::LinalgOp op) {
      if (isa<linalg::MatmulOp, linalg::BatchMatmulOp>(op) && matches(op))
        ops.push_back(op);
      else if (isa<linalg::BatchMatmulOp>(op) && matchesBatched(op))
        batched.push_back(op);
    });
    codegen::CPUKernelOptions options;
    options.vectorWidth = vectorWidth;
    options.parallelMinWeights = parallelMinWeights;
    options.gemvMaxRows = gemvMaxRows;
    OpBuilder b(&getContext());
    for (linalg::LinalgOp op : ops) {
      b.setInsertionPoint(op);
      Location loc = op.getLoc();
      Value x = rows2D(b, loc, op.getDpsInputs()[0]);
      Value w = rows2D(b, loc, op.getDpsInputs()[1]);
      Value out = rows2D(b, loc, op.getDpsInits()[0]);
      codegen::emitFloatMatmul(b, loc, x, w, out, options);
      op->erase();
    }
    for (linalg::LinalgOp op : batched) {
      b.setInsertionPoint(op);
      codegen::emitBatchedFloatMatmul(b, op.getLoc(), op.getDpsInputs()[0],
                                      op.getDpsInputs()[1], op.getDpsInits()[0],
                                      options);
      op->erase();
    }
  }

  /// Any other batch matmul on contiguous f32 buffers (attention's products,
  /// dynamic shapes included).
  static bool matchesBatched(linalg::LinalgOp op) {
    return op.hasPureBufferSemantics() && op.getNumDpsInputs() == 2 &&
           isContiguousF32(op.getDpsInputs()[0]) &&
           isContiguousF32(op.getDpsInputs()[1]) &&
           isContiguousF32(op.getDpsInits()[0]);
  }

  /// A plain (or batch-1) matmul on buffers whose right operand has a static
  /// shape: a linear layer (attention's products have dynamic shapes).
  static bool matches(linalg::LinalgOp op) {
    if (!op.hasPureBufferSemantics() || op.getNumDpsInputs() != 2)
      return false;
    Value a = op.getDpsInputs()[0], w = op.getDpsInputs()[1],
          c = op.getDpsInits()[0];
    if (!isContiguousF32(a) || !isContiguousF32(w) || !isContiguousF32(c))
      return false;
    auto wt = cast<MemRefType>(w.getType());
    if (!wt.hasStaticShape())
      return false;
    if (isa<linalg::BatchMatmulOp>(op)) {
      auto at = cast<MemRefType>(a.getType());
      return wt.getDimSize(0) == 1 && at.getDimSize(0) == 1 &&
             cast<MemRefType>(c.getType()).getDimSize(0) == 1;
    }
    return true;
  }
};

} // namespace
