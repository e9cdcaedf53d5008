//===- LowerStridedCopies.cpp - Strided memref.copy as linalg.copy --------===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// qf-lower-strided-copies: a memref.copy whose source or target is not one
// contiguous block (the halves of rotate_half written into a concatenation,
// slices of a transposed view) lowers, through finalize-memref-to-llvm, to a
// call of the MLIR runtime's generic memrefCopy, which steps through the
// elements one by one with per-element index arithmetic: 5% of a T = 256
// forward of the bundled llama. As a linalg.copy it becomes loops whose
// innermost, contiguous loop LLVM vectorizes, and qf-parallelize-linalg
// threads the large ones. Copies between identity layouts stay memref.copy
// (one memmove).
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/IR/PatternMatch.h"

namespace qforge {
#define GEN_PASS_DEF_LOWERSTRIDEDCOPIESPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;

namespace {
struct LowerStridedCopiesPass
    : public qforge::impl::LowerStridedCopiesPassBase<LowerStridedCopiesPass> {
  void runOnOperation() override {
    SmallVector<memref::CopyOp> copies;
    getOperation().walk([&](memref::CopyOp copy) {
      auto source = dyn_cast<MemRefType>(copy.getSource().getType());
      auto target = dyn_cast<MemRefType>(copy.getTarget().getType());
      if (source && target &&
          !(source.getLayout().isIdentity() && target.getLayout().isIdentity()))
        copies.push_back(copy);
    });
    IRRewriter rewriter(&getContext());
    for (memref::CopyOp copy : copies) {
      rewriter.setInsertionPoint(copy);
      rewriter.replaceOpWithNewOp<linalg::CopyOp>(copy, copy.getSource(),
                                                  copy.getTarget());
    }
  }
};
} // namespace
