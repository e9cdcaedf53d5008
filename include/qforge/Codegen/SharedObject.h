//===- SharedObject.h - LLVM dialect to a native shared object ---*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_CODEGEN_SHAREDOBJECT_H
#define QFORGE_CODEGEN_SHAREDOBJECT_H

#include "mlir/IR/BuiltinOps.h"

#include <string>
#include <vector>

namespace qforge::codegen {

struct NativeOptions {
  /// "native" (the compiling host) or an LLVM CPU name such as "x86-64-v3".
  std::string cpu = "native";
  unsigned optLevel = 3;
};

/// f32 lanes the CPU kernels should use for `cpu` ("native" or an LLVM CPU
/// name): 16 where it has AVX-512, else 8.
int64_t preferredVectorWidth(const std::string &cpu);

/// Whether `cpu` ("native" or an LLVM CPU name) has `feature` (e.g.
/// "avx512vnni").
bool cpuHasFeature(const std::string &cpu, const std::string &feature);

struct SharedObject {
  std::vector<char> bytes;
  /// The packed entry symbol: `void symbol(void **args)`.
  std::string symbol;
  std::string cpu;
  /// CPU features the code may use, by the runtime's names (avx2, fma, avx512f,
  /// ...).
  std::vector<std::string> features;
};

/// Translates `module` (LLVM dialect, host code; may hold gpu.binary ops) to
/// LLVM IR, adds the packed entry `void qf_entry_<entry>(void **args)` calling
/// `_mlir_ciface_<entry>` with `numArgs` descriptor pointers (when
/// `hasResults`, the last one points to the results area), optimizes, emits an
/// object and links it into a shared object. On failure returns false and sets
/// `error`.
bool buildSharedObject(mlir::ModuleOp module, llvm::StringRef entry,
                       unsigned numArgs, bool hasResults,
                       const NativeOptions &options, SharedObject &out,
                       std::string &error);

} // namespace qforge::codegen

#endif // QFORGE_CODEGEN_SHAREDOBJECT_H
