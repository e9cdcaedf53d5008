//===- QFDialect.h - The qf quantization dialect -----------------*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_DIALECT_QF_QFDIALECT_H
#define QFORGE_DIALECT_QF_QFDIALECT_H

#include "mlir/Bytecode/BytecodeOpInterface.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/Dialect.h"
#include "mlir/IR/OpDefinition.h"
#include "mlir/Interfaces/DestinationStyleOpInterface.h"
#include "mlir/Interfaces/SideEffectInterfaces.h"

#include "dialects/qf/QFDialect.h.inc"
#include "dialects/qf/QFEnums.h.inc"

#define GET_ATTRDEF_CLASSES
#include "dialects/qf/QFAttrs.h.inc"

#define GET_OP_CLASSES
#include "dialects/qf/QFOps.h.inc"

namespace mlir {
class DialectRegistry;
} // namespace mlir

namespace qforge::qf {
/// Registers the bufferization model of qf.fused_matmul.
void registerBufferizableOpInterfaceExternalModels(
    mlir::DialectRegistry &registry);
} // namespace qforge::qf

#endif // QFORGE_DIALECT_QF_QFDIALECT_H
