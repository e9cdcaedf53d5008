//===- ExternalizeWeights.cpp - Weights become entry arguments ---*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "passes/Passes.h"

#include "mlir/IR/Matchers.h"

namespace qforge {
#define GEN_PASS_DEF_EXTERNALIZEWEIGHTSPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;
using namespace qforge;

namespace {
struct ExternalizeWeightsPass
    : public qforge::impl::ExternalizeWeightsPassBase<ExternalizeWeightsPass> {
  using Base::Base;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto func = module.lookupSymbol<func::FuncOp>(entry);
    if (!func) {
      module.emitError("qf-externalize-weights: no entry function @") << entry;
      return signalPassFailure();
    }
    SmallVector<std::pair<Operation *, ElementsAttr>> weights;
    func.walk([&](Operation *op) {
      Attribute attr;
      if (op->getNumResults() != 1 ||
          !matchPattern(op->getResult(0), m_Constant(&attr)))
        return;
      auto elements = dyn_cast<ElementsAttr>(attr);
      if (!elements || !isa<RankedTensorType>(op->getResult(0).getType()))
        return;
      bool resource = isa<DenseResourceElementsAttr>(elements);
      if (!resource &&
          (elements.isSplat() || elements.getNumElements() < minElements))
        return;
      weights.push_back({op, elements});
    });
    MLIRContext *ctx = &getContext();
    for (auto [i, w] : llvm::enumerate(weights)) {
      auto [op, elements] = w;
      NamedAttrList attrs;
      attrs.set("qf.weight", elements);
      if (auto name = op->getAttrOfType<StringAttr>("qf.name"))
        attrs.set("qf.name", name);
      if (failed(func.insertArgument(i, op->getResult(0).getType(),
                                     attrs.getDictionary(ctx), op->getLoc()))) {
        op->emitError("qf-externalize-weights: cannot add an argument");
        return signalPassFailure();
      }
      op->getResult(0).replaceAllUsesWith(func.getArgument(i));
      op->erase();
    }
    // The runtime calls the entry through its C interface.
    func->setAttr("llvm.emit_c_interface", UnitAttr::get(ctx));
  }
};
} // namespace
