//===- Calibrate.h - Executing a model for qf-calibrate ---------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// qf-calibrate needs to compile and run a model, which is the compiler
// driver's job (lib/codegen), a layer above the passes. The driver installs
// an ActivationRunner; the pass hands it an instrumented module and the token
// windows, and receives every float result of every window.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_PASSES_CALIBRATE_H
#define QFORGE_PASSES_CALIBRATE_H

#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/IR/BuiltinOps.h"
#include "llvm/ADT/STLFunctionalExtras.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace qforge {

/// Receives result `index` of one run: `rows` x `cols` row-major floats (the
/// result flattened to its last dimension).
using ActivationSink = llvm::function_ref<void(
    unsigned index, const float *data, int64_t rows, int64_t cols)>;

/// Called after each window with the number of windows done.
using RunProgress = llvm::function_ref<void(size_t done)>;

/// Compiles `module` (a copy the runner may change) for the CPU and runs its
/// @main over the windows, feeding them as the one non-weight input (shape
/// [B, window size], B windows per call for a static batch B, else one);
/// reports every result through `sink`, the rows of real windows only. Returns
/// false with a one-line `error` on failure.
using ActivationRunner = std::function<bool(
    mlir::ModuleOp module, const std::vector<std::vector<int64_t>> &windows,
    ActivationSink sink, RunProgress progress, std::string &error)>;

/// The installed runner; empty when none is.
const ActivationRunner &activationRunner();

/// Makes `func` return `results` only, named `names` (`qf.name`).
void setFunctionResults(mlir::func::FuncOp func, mlir::ValueRange results,
                        llvm::ArrayRef<std::string> names);

/// Draws `count` windows of `length` bytes from the file `path`, starting
/// uniformly in [0, size - length] (std::mt19937_64 from `seed`). Returns
/// false with a one-line `error` naming the file on failure.
bool sampleWindows(llvm::StringRef path, int64_t count, int64_t length,
                   uint64_t seed, std::vector<std::vector<int64_t>> &windows,
                   std::string &error);

/// Installs the runner qf-calibrate uses (the compiler driver does this).
void setActivationRunner(ActivationRunner runner);

} // namespace qforge

#endif // QFORGE_PASSES_CALIBRATE_H
