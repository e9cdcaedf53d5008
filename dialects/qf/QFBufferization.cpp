//===- QFBufferization.cpp - Bufferization of qf operations -----*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// qf.fused_matmul is destination-passing: upstream one-shot bufferization turns
// the tensor form into the memref form, which the CPU and GPU lowerings
// consume.
//
//===----------------------------------------------------------------------===//

#include "dialects/qf/QFDialect.h"

#include "mlir/Dialect/Bufferization/IR/Bufferization.h"
#include "mlir/Dialect/Bufferization/IR/DstBufferizableOpInterfaceImpl.h"

using namespace mlir;
using namespace mlir::bufferization;
using namespace qforge::qf;

namespace {
struct FusedMatmulBufferization
    : public DstBufferizableOpInterfaceExternalModel<FusedMatmulBufferization,
                                                     FusedMatmulOp> {
  // The destination is overwritten, never read.
  bool bufferizesToMemoryRead(Operation *op, OpOperand &operand,
                              const AnalysisState &) const {
    return &operand != &cast<FusedMatmulOp>(op).getInitMutable();
  }

  LogicalResult bufferize(Operation *op, RewriterBase &rewriter,
                          const BufferizationOptions &options,
                          BufferizationState &state) const {
    SmallVector<Value> buffers;
    for (OpOperand &operand : op->getOpOperands()) {
      FailureOr<Value> buffer =
          getBuffer(rewriter, operand.get(), options, state);
      if (failed(buffer))
        return failure();
      buffers.push_back(*buffer);
    }
    rewriter.setInsertionPoint(op);
    OperationState result(op->getLoc(), op->getName(), buffers, TypeRange{},
                          op->getAttrs());
    rewriter.create(result);
    Value destination = buffers.back();
    replaceOpWithBufferizedValues(rewriter, op, destination);
    return success();
  }
};
} // namespace

void qforge::qf::registerBufferizableOpInterfaceExternalModels(
    DialectRegistry &registry) {
  registry.addExtension(+[](MLIRContext *ctx, QFDialect *) {
    FusedMatmulOp::attachInterface<FusedMatmulBufferization>(*ctx);
  });
}
