//===- Calibrate.cpp - qf-calibrate: input statistics of linear layers ----===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// Draws token windows from the calibration text, runs a copy of the model
// that also returns the input X of every constant linear, and attaches
// per-linear statistics (`qf.calib`: rows, mean |x|, XᵀX / rows) that the
// GPTQ and AWQ passes consume. Numerics are
// qforge::qforge::quant::ActivationStats.
//
//===----------------------------------------------------------------------===//

#include "passes/Calibrate.h"
#include "passes/Passes.h"
#include "passes/WeightRewrite.h"
#include "qforge/Quant/Hessian.h"

#include "llvm/Support/MemoryBuffer.h"

#include "llvm/Support/Format.h"
#include "llvm/Support/raw_ostream.h"

#include <chrono>
#include <random>

namespace qforge {
#define GEN_PASS_DEF_CALIBRATEPASS
#include "passes/Passes.h.inc"
} // namespace qforge

using namespace mlir;
using namespace qforge;

static ActivationRunner &runnerSlot() {
  static ActivationRunner runner;
  return runner;
}

const ActivationRunner &qforge::activationRunner() { return runnerSlot(); }

void qforge::setActivationRunner(ActivationRunner runner) {
  runnerSlot() = std::move(runner);
}

void qforge::setFunctionResults(func::FuncOp func, ValueRange results,
                                ArrayRef<std::string> names) {
  MLIRContext *ctx = func.getContext();
  auto ret = cast<func::ReturnOp>(func.getBody().back().getTerminator());
  ret->setOperands(results);
  func.setType(
      FunctionType::get(ctx, func.getArgumentTypes(), results.getTypes()));
  SmallVector<DictionaryAttr> attrs;
  for (const std::string &name : names)
    attrs.push_back(DictionaryAttr::get(
        ctx, {NamedAttribute(StringAttr::get(ctx, "qf.name"),
                             StringAttr::get(ctx, name))}));
  func.setAllResultAttrs(attrs);
}

bool qforge::sampleWindows(StringRef path, int64_t count, int64_t length,
                           uint64_t seed,
                           std::vector<std::vector<int64_t>> &windows,
                           std::string &error) {
  llvm::ErrorOr<std::unique_ptr<llvm::MemoryBuffer>> text =
      llvm::MemoryBuffer::getFile(path, /*IsText=*/false);
  if (!text) {
    error = "calibration text '" + path.str() +
            "': cannot open: " + text.getError().message();
    return false;
  }
  StringRef bytes = (*text)->getBuffer();
  if (int64_t(bytes.size()) < length) {
    error = "calibration text '" + path.str() + "' has " +
            std::to_string(bytes.size()) + " bytes, fewer than one window of " +
            std::to_string(length);
    return false;
  }
  // Windows start uniformly in [0, size - length], from the seed.
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> pick(0, bytes.size() - length);
  windows.assign(count, {});
  for (std::vector<int64_t> &w : windows) {
    int64_t start = pick(rng);
    for (int64_t i = 0; i < length; ++i)
      w.push_back(static_cast<unsigned char>(bytes[start + i]));
  }
  return true;
}

namespace {

struct CalibratePass : qforge::impl::CalibratePassBase<CalibratePass> {
  using CalibratePassBase::CalibratePassBase;

  void runOnOperation() override {
    ModuleOp module = getOperation();
    auto fail = [&](const Twine &message) {
      module.emitError("qf-calibrate: ") << message;
      signalPassFailure();
    };
    if (calib.empty())
      return fail("no calibration text given (option calib)");
    if (nsamples < 1 || seqlen < 2)
      return fail("nsamples must be at least 1 and seqlen at least 2");
    auto main = module.lookupSymbol<func::FuncOp>("main");
    if (!main)
      return fail("the module has no @main");
    if (!runnerSlot())
      return fail("no model executor is installed (run it from qforge-compile "
                  "or qforge-opt)");

    std::vector<std::vector<int64_t>> windows;
    std::string error;
    if (!sampleWindows(calib, nsamples, seqlen, seed, windows, error))
      return fail(error);

    std::vector<LinearWeight> linears = findConstantLinears(main);
    // With next-stage, only the linears that read no float linear's output.
    std::vector<size_t> measured;
    unsigned stageCount = 0;
    std::vector<unsigned> stages = linearStages(main, linears);
    for (auto [i, stage] : llvm::enumerate(stages)) {
      stageCount = std::max(stageCount, stage + 1);
      if (!nextStage || stage == 0)
        measured.push_back(i);
    }
    if (measured.empty())
      return;

    // A copy whose @main returns the measured linears' inputs (and nothing
    // else, so that the rest of the model is dead code).
    OwningOpRef<ModuleOp> copy = cast<ModuleOp>(module->clone());
    auto copyMain = copy->lookupSymbol<func::FuncOp>("main");
    std::vector<LinearWeight> copyLinears = findConstantLinears(copyMain);
    // A weight read by several linears gets the statistics of all their
    // inputs together.
    SmallVector<Value> results;
    std::vector<std::string> names;
    std::vector<size_t> statOf;
    for (auto [n, i] : llvm::enumerate(measured)) {
      for (tosa::MatMulOp use : copyLinears[i].uses()) {
        names.push_back("qf.calib." + std::to_string(results.size()));
        results.push_back(use.getA());
        statOf.push_back(n);
      }
    }
    setFunctionResults(copyMain, results, names);

    std::vector<qforge::quant::ActivationStats> stats;
    for (size_t i : measured)
      stats.emplace_back(linears[i].cols);
    std::string shapeError;
    auto sink = [&](unsigned index, const float *data, int64_t rows,
                    int64_t cols) {
      if (index >= statOf.size())
        return;
      qforge::quant::ActivationStats &s = stats[statOf[index]];
      if (cols != s.channels()) {
        shapeError = "layer input has " + std::to_string(cols) +
                     " channels, expected " + std::to_string(s.channels());
        return;
      }
      s.add(data, rows, cols);
    };
    auto start = std::chrono::steady_clock::now();
    auto report = [&](size_t done) {
      if (progress)
        llvm::errs() << "\rqf-calibrate: window " << done << "/"
                     << windows.size() << (done == windows.size() ? "\n" : "");
    };
    if (progress) {
      if (nextStage) {
        llvm::errs() << "qf-calibrate: stage of " << measured.size()
                     << " layer(s) (";
        for (auto [n, i] : llvm::enumerate(measured))
          llvm::errs() << (n ? ", " : "") << linears[i].name;
        llvm::errs() << "), " << stageCount - 1 << " stage(s) after it\n";
      }
      llvm::errs() << "qf-calibrate: compiling the model to run "
                   << windows.size() << " windows of " << seqlen << " bytes\n";
    }
    if (!runnerSlot()(copy.get(), windows, sink, report, error))
      return fail(error);
    if (progress)
      llvm::errs() << llvm::format("qf-calibrate: %zu layers, %.1f s\n",
                                   measured.size(),
                                   std::chrono::duration<double>(
                                       std::chrono::steady_clock::now() - start)
                                       .count());
    if (!shapeError.empty())
      return fail(shapeError);

    Builder b(&getContext());
    for (auto [i, s] : llvm::zip(measured, stats)) {
      const LinearWeight &linear = linears[i];
      std::vector<double> xtx = s.hessian(1.0);
      linear.matmul->setAttr(
          "qf.calib", makeCalibAttr(b, linear.name + ".xtx", s.rows(),
                                    std::vector<float>(xtx.begin(), xtx.end()),
                                    s.meanAbs()));
    }
  }
};
} // namespace
