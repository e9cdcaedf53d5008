//===- ChannelTrace.h - Channels of an input back to a linear ---*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// qf-awq divides a group's input X by per-channel scales s. When X is made,
// through ops that commute with a per-channel scaling, from the output of a
// previous constant linear, 1/s can be folded into that linear's output
// channels (the rows of its weight, and of a following constant bias)
// instead of being an explicit multiplication: v → attention → o, and
// up → silu(gate) * up → down, as in the AWQ reference.
//
// traceChannels walks back from X through a chain of ops each read only by
// the next one (the last one only by the group's matmuls):
//   tosa.reshape     channel coordinates split or merged within static
//                    blocks of dimensions that hold only channel coordinates;
//   tosa.transpose   coordinates permuted;
//   tosa.matmul      the chain is the B operand (P · V): scaled only along
//                    V's batch and column dimensions, never the contracted
//                    one;
//   tosa.mul         the chain is one operand, of the result's shape along
//                    the channel dimensions;
//   tosa.add         with a constant (bias) that is not broadcast along the
//                    channel dimensions; the bias must be divided too;
// until it reaches the result of a producer linear's tosa.matmul, whose last
// dimension then holds the channel coordinates. It gives, for each channel c
// of X's last dimension, the producer's output channel (a permutation).
// Anything else (concatenation with a past cache, a nonlinearity such as
// GELU, a value with other readers, a reshape mixing channel coordinates with
// dynamic or sequence dimensions) is a failure: the caller then scales X
// explicitly.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_PASSES_CHANNELTRACE_H
#define QFORGE_PASSES_CHANNELTRACE_H

#include "mlir/Dialect/Tosa/IR/TosaOps.h"
#include "mlir/IR/Builders.h"
#include "llvm/ADT/STLFunctionalExtras.h"

#include <vector>

namespace qforge {

/// A constant added on the chain, whose elements must be divided by the
/// scale of their channel.
struct ChainBias {
  mlir::tosa::AddOp add;
  /// The operand of `add` holding the constant.
  unsigned operand = 0;
  /// The constant's values (row-major over the operand's shape) and, for
  /// each, the channel of X it adds to.
  std::vector<float> values;
  std::vector<int64_t> channel;
};

struct ChannelTrace {
  /// The linear whose output the chain starts from.
  mlir::tosa::MatMulOp producer;
  /// producerChannel[c]: the producer's output channel that becomes channel c
  /// of X's last dimension.
  std::vector<int64_t> producerChannel;
  std::vector<ChainBias> biases;
};

/// Traces the channels of `x` (read by exactly `consumers`) back to the
/// result of a tosa.matmul for which `isProducer` holds, or fails.
mlir::FailureOr<ChannelTrace>
traceChannels(mlir::Value x, llvm::ArrayRef<mlir::Operation *> consumers,
              llvm::function_ref<bool(mlir::tosa::MatMulOp)> isProducer);

/// Divides every bias of `trace` by the scale of its channel: each element
/// b of the constant for channel c becomes b / s[c] (a new resource constant
/// named after `name`, replacing the add's operand).
void scaleChainBiases(mlir::OpBuilder &b, const ChannelTrace &trace,
                      llvm::ArrayRef<float> s, llvm::StringRef name);

} // namespace qforge

#endif // QFORGE_PASSES_CHANNELTRACE_H
