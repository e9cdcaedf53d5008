//===- qforge-opt.cpp - mlir-opt with the qf dialect and passes -*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "dialects/qf/QFDialect.h"
#include "passes/Passes.h"
#include "qforge/Compiler/Compiler.h"

#include "mlir/IR/DialectRegistry.h"
#include "mlir/InitAllDialects.h"
#include "mlir/InitAllExtensions.h"
#include "mlir/InitAllPasses.h"
#include "mlir/Tools/mlir-opt/MlirOptMain.h"

int main(int argc, char **argv) {
  mlir::registerAllPasses();
  qforge::registerPasses();
  qforge::installActivationRunner(); // qf-calibrate compiles and runs models
  mlir::DialectRegistry registry;
  mlir::registerAllDialects(registry);
  mlir::registerAllExtensions(registry);
  qforge::registerDialects(registry);
  return mlir::asMainReturnCode(
      mlir::MlirOptMain(argc, argv, "qforge optimizer driver\n", registry));
}
