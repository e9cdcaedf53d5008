//===- ReassociateReductions.cpp - Let LLVM vectorize linalg reductions ---===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// qf-reassociate-reductions: in each linalg op with a reduction loop, the
// floating-point operations that combine an element into the output
// accumulator (the sums of RMSNorm and softmax, the running max) get the
// `reassoc` fast-math flag. Without it, the loops convert-linalg-to-loops
// emits for them stay scalar: LLVM may not reorder a floating-point sum, so
// it adds one element at a time (vaddss) instead of 16 lanes at once. The sums
// then depend on the vector width (not on the thread count: each row's sum
// stays on one thread), within a few ULP of the ordered sum.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/Linalg/IR/Linalg.h"

namespace qforge {
#define GEN_PASS_DEF_REASSOCIATEREDUCTIONSPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;

namespace {
struct ReassociateReductionsPass
    : public qforge::impl::ReassociateReductionsPassBase<
          ReassociateReductionsPass> {
  void runOnOperation() override {
    getOperation().walk([&](linalg::LinalgOp op) {
      if (op.getNumReductionLoops() == 0 || op->getNumRegions() != 1 ||
          op->getRegion(0).empty())
        return;
      Block &body = op->getRegion(0).front();
      // The accumulators: the block arguments of the outputs.
      for (OpOperand &init : op.getDpsInitsMutable()) {
        BlockArgument acc = op.getMatchingBlockArgument(&init);
        for (Operation *user : acc.getUsers()) {
          auto fastmath = dyn_cast<arith::ArithFastMathInterface>(user);
          if (!fastmath || user->getBlock() != &body ||
              !isa<arith::AddFOp, arith::MulFOp, arith::MaximumFOp,
                   arith::MinimumFOp, arith::MaxNumFOp, arith::MinNumFOp>(user))
            continue;
          auto flags = fastmath.getFastMathFlagsAttr();
          auto reassoc = arith::FastMathFlags::reassoc;
          user->setAttr(
              fastmath.getFastMathAttrName(),
              arith::FastMathFlagsAttr::get(
                  &getContext(),
                  (flags ? flags.getValue() : arith::FastMathFlags::none) |
                      reassoc));
        }
      }
    });
  }
};
} // namespace
