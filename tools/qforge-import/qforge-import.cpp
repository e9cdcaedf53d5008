//===- qforge-import.cpp - ONNX model to graph IR -------------------------===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
//   qforge-import model.onnx -o model.mlir [--shape input_ids=1x256 ...]
//
// Writes the graph IR (text, or bytecode with --emit-bytecode). On error it
// prints one line, exits non-zero and leaves no output file.
//
//===----------------------------------------------------------------------===//

#include "qforge/Importer/Importer.h"

#include "mlir/Bytecode/BytecodeWriter.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "mlir/IR/OperationSupport.h"
#include "mlir/Support/FileUtilities.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/ToolOutputFile.h"
#include "llvm/Support/WithColor.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;

static cl::OptionCategory importCategory("qforge-import options");

static cl::opt<std::string> inputFilename(cl::Positional,
                                          cl::desc("<model.onnx>"),
                                          cl::cat(importCategory));

static cl::opt<std::string> outputFilename("o", cl::desc("Output file"),
                                           cl::value_desc("filename"),
                                           cl::init("-"),
                                           cl::cat(importCategory));

static cl::list<std::string>
    shapes("shape",
           cl::desc("Static shape of a graph input, e.g. input_ids=1x256 "
                    "(repeatable)"),
           cl::value_desc("name=D0xD1x..."), cl::cat(importCategory));

static cl::opt<bool> emitBytecode("emit-bytecode",
                                  cl::desc("Write MLIR bytecode, not text"),
                                  cl::cat(importCategory));

static cl::opt<bool>
    listOps("list-ops", cl::desc("Print the supported ONNX operators and exit"),
            cl::cat(importCategory));

static int error(const Twine &message) {
  WithColor::error(errs(), "qforge-import") << message << "\n";
  return 1;
}

/// Parses "name=1x256" (dimensions also separated by ',').
static bool parseShape(StringRef spec, qforge::importer::ImportOptions &opts,
                       std::string &message) {
  size_t eq = spec.rfind('=');
  if (eq == StringRef::npos || eq == 0 || eq + 1 == spec.size()) {
    message = "--shape '" + spec.str() + "': expected NAME=D0xD1x...";
    return false;
  }
  StringRef name = spec.take_front(eq);
  StringRef dimsText = spec.drop_front(eq + 1);
  SmallVector<StringRef> parts;
  dimsText.split(parts, dimsText.contains(',') ? ',' : 'x');
  std::vector<int64_t> dims;
  for (StringRef part : parts) {
    int64_t d;
    if (part.trim().getAsInteger(10, d) || d < 0) {
      message = "--shape '" + spec.str() + "': '" + part.str() +
                "' is not a dimension size";
      return false;
    }
    dims.push_back(d);
  }
  if (!opts.shapes.emplace(name.str(), std::move(dims)).second) {
    message = "--shape given twice for '" + name.str() + "'";
    return false;
  }
  return true;
}

int main(int argc, char **argv) {
  InitLLVM initLLVM(argc, argv);
  mlir::registerAsmPrinterCLOptions();
  mlir::registerMLIRContextCLOptions();
  cl::ParseCommandLineOptions(argc, argv,
                              "qforge-import: ONNX model to qforge graph IR\n");

  if (listOps) {
    for (const std::string &op : qforge::importer::getSupportedOperators())
      outs() << op << "\n";
    return 0;
  }

  if (inputFilename.empty())
    return error("no input model (usage: qforge-import model.onnx -o "
                 "model.mlir)");

  qforge::importer::ImportOptions opts;
  for (const std::string &spec : shapes) {
    std::string message;
    if (!parseShape(spec, opts, message))
      return error(message);
  }

  mlir::DialectRegistry registry;
  qforge::importer::registerImporterDialects(registry);
  mlir::MLIRContext context(registry);

  std::string message;
  mlir::OwningOpRef<mlir::ModuleOp> module =
      qforge::importer::importONNXFile(context, inputFilename, opts, message);
  if (!module)
    return error(message);

  std::string openError;
  std::unique_ptr<ToolOutputFile> output =
      mlir::openOutputFile(outputFilename, &openError);
  if (!output)
    return error(openError);
  if (emitBytecode) {
    if (mlir::failed(mlir::writeBytecodeToFile(*module, output->os())))
      return error("cannot write bytecode");
  } else {
    module->print(output->os(), mlir::OpPrintingFlags());
  }
  output->os().flush();
  if (output->os().has_error())
    return error(outputFilename + ": " + output->os().error().message());
  output->keep();
  return 0;
}
