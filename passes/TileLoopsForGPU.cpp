//===- TileLoopsForGPU.cpp - Block and thread tiles of host loops ---------===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// qf-tile-loops-for-gpu: each outermost scf.parallel of host code (the loops
// convert-linalg-to-parallel-loops makes of the elementwise chains, norms,
// softmax rows, transposes, attention products and strided copies) is tiled
// into a loop over blocks around a loop over the threads of one block, with
// fixed inner bounds and an in-bounds guard (upstream tileParallelLoop), so
// that gpu-map-parallel-loops maps the outer loop to the grid and the inner
// one to the threads and convert-parallel-loops-to-gpu makes it a kernel.
//
// The threads of a block go to the innermost dimensions first (consecutive
// threads touch consecutive addresses): a dimension of static extent e takes
// min(e rounded up to a power of two, threads left), a dynamic one all the
// threads left, extent-1 dimensions take none; only the three innermost
// dimensions take threads (thread x, y, z; z at most 64). A loop of more than
// three dimensions first has its leading ones collapsed into one (upstream
// collapseParallelLoops): gpu-map-parallel-loops maps dimensions 0..2 only
// and would run the innermost ones sequentially in each thread. The grid's y
// and z extents (at most 65535 on CUDA) come from the outer dimensions.
// Upstream scf-parallel-loop-tiling instead tiles the leading dimensions by one
// list of sizes, which leaves most threads idle on [1, S, D] loops.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/Dialect/SCF/Transforms/Transforms.h"
#include "mlir/Dialect/SCF/Utils/Utils.h"
#include "mlir/Dialect/Utils/StaticValueUtils.h"

#include "llvm/Support/MathExtras.h"

namespace qforge {
#define GEN_PASS_DEF_TILELOOPSFORGPUPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;

namespace {
/// Thread tile sizes of `loop` for `threads` threads per block.
SmallVector<int64_t> threadTile(scf::ParallelOp loop, int64_t threads) {
  unsigned rank = loop.getNumLoops();
  SmallVector<int64_t> tile(rank, 1);
  int64_t left = threads;
  // gpu-map-parallel-loops (innermost-first) gives the three innermost
  // dimensions to threads x, y, z (z at most 64 on CUDA); others run
  // sequentially in each thread.
  for (unsigned d = rank; d-- > 0 && left > 1 && rank - d <= 3;) {
    int64_t cap = rank - d == 3 ? std::min<int64_t>(left, 64) : left;
    std::optional<int64_t> lb = getConstantIntValue(loop.getLowerBound()[d]);
    std::optional<int64_t> ub = getConstantIntValue(loop.getUpperBound()[d]);
    std::optional<int64_t> step = getConstantIntValue(loop.getStep()[d]);
    if (lb && ub && step && *step > 0) {
      int64_t extent = (*ub - *lb + *step - 1) / *step;
      if (extent <= 1)
        continue;
      tile[d] = std::min<int64_t>(cap, llvm::PowerOf2Ceil(extent));
    } else {
      tile[d] = cap;
    }
    left /= tile[d];
  }
  return tile;
}

struct TileLoopsForGPUPass
    : public qforge::impl::TileLoopsForGPUPassBase<TileLoopsForGPUPass> {
  using TileLoopsForGPUPassBase::TileLoopsForGPUPassBase;

  void runOnOperation() override {
    if (threads < 1 || !llvm::isPowerOf2_64(threads)) {
      getOperation().emitError("qf-tile-loops-for-gpu: threads must be a "
                               "power of two, got ")
          << static_cast<int64_t>(threads);
      return signalPassFailure();
    }
    auto topLevel = [&] {
      SmallVector<scf::ParallelOp> loops;
      getOperation().walk([&](scf::ParallelOp loop) {
        if (!loop->getParentOfType<scf::ParallelOp>() &&
            !loop->getParentOfType<gpu::LaunchOp>())
          loops.push_back(loop);
      });
      return loops;
    };
    // gpu-map-parallel-loops maps only dimensions 0, 1 and 2 (to z, y, x with
    // innermost-first) and runs the others sequentially in each thread: the
    // leading dimensions of a deeper loop become one, so the innermost
    // dimension (consecutive addresses; a warp reduction's lanes) is thread x.
    IRRewriter rewriter(&getContext());
    for (scf::ParallelOp loop : topLevel()) {
      unsigned rank = loop.getNumLoops();
      if (rank <= 3)
        continue;
      std::vector<unsigned> leading;
      for (unsigned d = 0; d + 2 < rank; ++d)
        leading.push_back(d);
      rewriter.setInsertionPoint(loop);
      collapseParallelLoops(rewriter, loop, {leading, {rank - 2}, {rank - 1}});
    }
    for (scf::ParallelOp loop : topLevel())
      scf::tileParallelLoop(loop, threadTile(loop, threads),
                            /*noMinMaxBounds=*/true);
  }
};
} // namespace
