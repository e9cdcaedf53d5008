//===- Compiler.h - ONNX model to .qfm module -------------------*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// The ahead-of-time compile: import, quantize, fuse, externalize weights, lower
// for each target, emit native code and write the module file.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_COMPILER_COMPILER_H
#define QFORGE_COMPILER_COMPILER_H

#include "qforge/Importer/Importer.h"

#include <string>
#include <vector>

namespace qforge {

struct CompileTarget {
  std::string kind; // "cpu" or "cuda"
  std::string chip; // cuda: sm_80, sm_90
};

struct CompileOptions {
  std::string input, output;
  std::string method = "rtn"; // none | rtn | gptq | awq | squeezellm
  // squeezellm: what weights the k-means (fisher, xtx, none) and its solver
  // (exact, lloyd).
  std::string sensitivity = "xtx";
  std::string solver = "exact";
  // squeezellm: element type of the per-row tables (f32, f16)
  std::string table = "f32";
  // Dense-and-sparse split before quantizing (any method): outliers and
  // sensitive values, percent of the weights (0: none).
  double outliers = 0;
  double sensitive = 0;
  bool clip = false;       // rtn: MSE clipping search
  bool actOrder = false;   // gptq: descending diag H, static groups
  bool sequential = false; // gptq: calibrate and quantize stage by stage
  unsigned bits = 4;
  int64_t groupSize = 128; // -1 per channel, 0 per tensor
  bool symmetric = true;
  std::vector<CompileTarget> targets = {{"cpu", ""}};
  std::string cpu = "native";
  unsigned optLevel = 3; // LLVM optimization level of CPU code
  // CPU GEMV activations: "int8" (quantized per 32 channels, vpdpbusd; where
  // the CPU has AVX-512 VNNI, else f32) or "f32".
  std::string activations = "int8";
  // CPU: the largest number of activation rows that takes the GEMV kernel.
  int64_t gemvMaxRows = 4;
  // CPU, for testing: computes as the CUDA target's kernels do where their
  // arithmetic differs (qf-emulate-warp-gemv, qf-warp-reductions{emulate}).
  bool emulateCuda = false;
  importer::ImportOptions import;
  bool printIRAfterAll = false;
  std::string dumpIRDir; // one numbered file per pass
  std::string emitPTXDir;
  bool quiet = false;
  /// Calibration (qf-calibrate) when `calib` names a text file.
  std::string calib;
  int64_t nsamples = 128, seqlen = 256;
  uint64_t seed = 0;
};

/// Installs the executor qf-calibrate uses in this process: it compiles a
/// module for the CPU into a temporary file and runs it with the runtime.
/// qforge-compile does this itself; qforge-opt calls it at start-up.
void installActivationRunner();

/// Parses "cpu,cuda:sm_90" into targets; returns false with `error` on bad
/// input.
bool parseTargets(llvm::StringRef text, std::vector<CompileTarget> &targets,
                  std::string &error);

/// Compiles; on failure returns false with one line in `error` and leaves no
/// output.
bool compileModel(const CompileOptions &options, std::string &error);

} // namespace qforge

#endif // QFORGE_COMPILER_COMPILER_H
