//===- Fisher.cpp - qf-fisher: empirical Fisher information of weights ----===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// Runs qf-grad's gradient function once per calibration sequence through the
// executor qf-calibrate uses and accumulates the squared per-sequence
// gradients, as SqueezeLLM's reference does (batch size 1, squared before
// summing). The mean over sequences is attached to each weight constant as
// `qf.fisher`.
//
//===----------------------------------------------------------------------===//

#include "passes/Calibrate.h"
#include "passes/Grad.h"
#include "passes/Passes.h"
#include "passes/WeightRewrite.h"

#include "mlir/IR/DialectResourceBlobManager.h"
#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>

namespace qforge {
#define GEN_PASS_DEF_FISHERPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;
using namespace qforge;

namespace {
struct FisherPass : qforge::impl::FisherPassBase<FisherPass> {
  using FisherPassBase::FisherPassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto fail = [&](const Twine &message) {
      module.emitError("qf-fisher: ") << message;
      signalPassFailure();
    };
    if (calib.empty())
      return fail("no calibration text given (option calib)");
    if (nsamples < 1)
      return fail("nsamples must be at least 1");
    auto main = module.lookupSymbol<func::FuncOp>("main");
    if (!main)
      return fail("the module has no @main");
    auto ids = main.getNumArguments()
                   ? dyn_cast<RankedTensorType>(main.getArgumentTypes()[0])
                   : RankedTensorType();
    if (!ids || ids.getRank() != 2 || !ids.hasStaticShape())
      return fail("the token input must have a static shape [1, T]: import "
                  "the model with --shape input_ids=1xT");
    int64_t length = ids.getDimSize(1);
    if (!activationRunner())
      return fail("no model executor is installed (run it from qforge-compile "
                  "or qforge-opt)");
    std::vector<LinearWeight> linears = findConstantLinears(main);
    if (linears.empty())
      return;

    std::vector<std::vector<int64_t>> windows;
    std::string error;
    if (!sampleWindows(calib, nsamples, length, seed, windows, error))
      return fail(error);

    // A copy whose @main is the gradient function.
    OwningOpRef<ModuleOp> copy = cast<ModuleOp>(module->clone());
    auto copyMain = copy->lookupSymbol<func::FuncOp>("main");
    FailureOr<func::FuncOp> grad =
        buildGradientFunction(copyMain, GradLoss::CrossEntropy, "qf.grad");
    if (failed(grad))
      return signalPassFailure();
    for (func::FuncOp f :
         llvm::to_vector(copy->getBody()->getOps<func::FuncOp>()))
      if (f != *grad)
        f.erase();
    grad->setName("main");

    std::vector<std::vector<double>> sums;
    for (const LinearWeight &l : linears)
      sums.emplace_back(size_t(l.rows * l.cols), 0.0);
    double lossSum = 0;
    std::string shapeError;
    auto sink = [&](unsigned index, const float *data, int64_t rows,
                    int64_t cols) {
      if (index == 0) {
        lossSum += data[0];
        return;
      }
      std::vector<double> &f = sums[index - 1];
      if (size_t(rows * cols) != f.size()) {
        shapeError = "gradient " + std::to_string(index) + " has " +
                     std::to_string(rows * cols) + " values, expected " +
                     std::to_string(f.size());
        return;
      }
      for (size_t i = 0; i < f.size(); ++i)
        f[i] += double(data[i]) * double(data[i]);
    };
    auto start = std::chrono::steady_clock::now();
    auto report = [&](size_t done) {
      if (progress)
        llvm::errs() << llvm::format(
                            "\rqf-fisher: sequence %zu/%zu, mean loss %.4f",
                            done, windows.size(), lossSum / double(done))
                     << (done == windows.size() ? "\n" : "");
    };
    if (progress)
      llvm::errs() << "qf-fisher: compiling the gradients of " << linears.size()
                   << " weights to run " << windows.size() << " sequences of "
                   << length << " bytes\n";
    if (!activationRunner()(copy.get(), windows, sink, report, error))
      return fail(error);
    if (!shapeError.empty())
      return fail(shapeError);
    if (progress)
      llvm::errs() << llvm::format("qf-fisher: %zu weights, %.1f s\n",
                                   linears.size(),
                                   std::chrono::duration<double>(
                                       std::chrono::steady_clock::now() - start)
                                       .count());

    for (auto [l, f] : llvm::zip(linears, sums)) {
      std::vector<float> mean(f.size());
      for (size_t i = 0; i < f.size(); ++i)
        mean[i] = float(f[i] / double(windows.size()));
      auto type = cast<RankedTensorType>(l.constOp->getResult(0).getType());
      l.constOp->setAttr(
          "qf.fisher",
          DenseResourceElementsAttr::get(
              RankedTensorType::get(type.getShape(),
                                    Float32Type::get(&getContext())),
              sanitizeName(l.name + ".fisher"),
              HeapAsmResourceBlob::allocateAndCopyInferAlign(ArrayRef(mean))));
    }
  }
};
} // namespace
