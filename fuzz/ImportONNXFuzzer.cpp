//===- ImportONNXFuzzer.cpp - libFuzzer target: the ONNX importer ---------===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// Bytes -> ONNX model -> graph IR -> MLIR verifier. The importer must either
// produce IR that verifies or fail with one non-empty line of error; any
// crash, sanitizer report, leak or verifier failure is a finding.
//
//===----------------------------------------------------------------------===//

#include "FuzzUtil.h"
#include "qforge/Importer/Importer.h"

#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/Verifier.h"

using namespace qforge;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  std::string path = fuzz::writeInput("model.onnx", data, size);
  mlir::DialectRegistry registry;
  importer::registerImporterDialects(registry);
  mlir::MLIRContext ctx(registry, mlir::MLIRContext::Threading::DISABLED);
  std::string diagnostics;
  mlir::ScopedDiagnosticHandler handler(&ctx, [&](mlir::Diagnostic &d) {
    diagnostics += d.str() + "\n";
    return mlir::success();
  });

  std::string error;
  mlir::OwningOpRef<mlir::ModuleOp> module =
      importer::importONNXFile(ctx, path, importer::ImportOptions(), error);
  if (!module) {
    fuzz::checkErrorLine(error);
    return 0;
  }
  if (mlir::failed(mlir::verify(*module)))
    fuzz::violated("the imported IR does not verify:\n" + diagnostics);
  return 0;
}
