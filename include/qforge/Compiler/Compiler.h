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
  std::string method = "rtn"; // none | rtn
  unsigned bits = 4;
  int64_t groupSize = 128; // -1 per channel, 0 per tensor
  bool symmetric = true;
  std::vector<CompileTarget> targets = {{"cpu", ""}};
  std::string cpu = "native";
  importer::ImportOptions import;
  bool printIRAfterAll = false;
  std::string dumpIRDir; // one numbered file per pass
  std::string emitPTXDir;
  bool quiet = false;
};

/// Parses "cpu,cuda:sm_90" into targets; returns false with `error` on bad
/// input.
bool parseTargets(llvm::StringRef text, std::vector<CompileTarget> &targets,
                  std::string &error);

/// Compiles; on failure returns false with one line in `error` and leaves no
/// output.
bool compileModel(const CompileOptions &options, std::string &error);

} // namespace qforge

#endif // QFORGE_COMPILER_COMPILER_H
