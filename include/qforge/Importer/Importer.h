//===- Importer.h - ONNX model to graph IR ----------------------*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// Reads an ONNX model (protobuf, opsets 13-18 of the default domain) and
// builds the graph IR: one `func.func @main` over TOSA, tensor and arith ops
// whose weights are `dense_resource` blobs. Arguments and results carry the
// ONNX tensor names in `qf.name`; every op is located at its ONNX node
// (`loc("node_name"("model.onnx":0:0))`).
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_IMPORTER_IMPORTER_H
#define QFORGE_IMPORTER_IMPORTER_H

#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/OwningOpRef.h"
#include "llvm/ADT/StringRef.h"

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace mlir {
class DialectRegistry;
class MLIRContext;
} // namespace mlir

namespace qforge::importer {

struct ImportOptions {
  /// Static shapes for graph inputs (`--shape name=1x256`). They replace
  /// symbolic dimensions and must agree with the fixed ones.
  std::map<std::string, std::vector<int64_t>> shapes;
};

/// Imports the ONNX model at `path`. On failure returns null and sets `error`
/// to one line that names the file and, where there is one, the node, e.g.
/// "model.onnx: node 'fc1' (Conv): unsupported operator". Never throws.
mlir::OwningOpRef<mlir::ModuleOp> importONNXFile(mlir::MLIRContext &ctx,
                                                 llvm::StringRef path,
                                                 const ImportOptions &opts,
                                                 std::string &error);

/// Registers the dialects the graph IR uses: func, tosa, tensor, arith.
void registerImporterDialects(mlir::DialectRegistry &registry);

/// The ONNX operator types (default domain) the importer converts, sorted.
std::vector<std::string> getSupportedOperators();

} // namespace qforge::importer

#endif // QFORGE_IMPORTER_IMPORTER_H
