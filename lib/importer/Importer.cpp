//===- Importer.cpp - ONNX model to graph IR ------------------------------===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// Reads and checks the model (protobuf, opset, --shape overrides), runs ONNX
// shape inference and hands the graph to GraphConverter. Every exception
// from protobuf or libonnx is caught here and becomes a one-line error.
//
//===----------------------------------------------------------------------===//

#include "qforge/Importer/Importer.h"
#include "qforge/Support/OneLine.h"

#include "GraphConverter.h"

#include "mlir/Dialect/Arith/IR/Arith.h"
#include "mlir/Dialect/Func/IR/FuncOps.h"
#include "mlir/Dialect/Linalg/IR/Linalg.h"
#include "mlir/Dialect/Tensor/IR/Tensor.h"
#include "mlir/Dialect/Tosa/IR/TosaOps.h"
#include "mlir/IR/DialectRegistry.h"
#include "mlir/IR/MLIRContext.h"
#include "llvm/ADT/STLExtras.h"
#include "llvm/ADT/StringSet.h"
#include "llvm/Support/MemoryBuffer.h"

#include <google/protobuf/stubs/logging.h>
#include <onnx/shape_inference/implementation.h>

#include <climits>
#include <exception>

using namespace mlir;
using namespace qforge::importer;
using namespace qforge::importer::detail;

static constexpr int64_t kMinOpset = 1;
static constexpr int64_t kMaxOpset = 18;

void qforge::importer::registerImporterDialects(DialectRegistry &registry) {
  registry.insert<arith::ArithDialect, func::FuncDialect, linalg::LinalgDialect,
                  tensor::TensorDialect, tosa::TosaDialect>();
}

std::vector<std::string> qforge::importer::getSupportedOperators() {
  std::vector<std::string> ops;
  for (const auto &entry : getOpTable())
    ops.push_back(entry.first().str());
  llvm::sort(ops);
  return ops;
}

namespace {

/// Silences protobuf's own logging while alive, so a bad file yields our one
/// line and nothing else.
class ProtobufLogSilencer {
public:
  ProtobufLogSilencer()
      : previous(google::protobuf::SetLogHandler([](google::protobuf::LogLevel,
                                                    const char *, int,
                                                    const std::string &) {})) {}
  ~ProtobufLogSilencer() { google::protobuf::SetLogHandler(previous); }

private:
  google::protobuf::LogHandler *previous;
};

std::string formatDims(const std::vector<int64_t> &dims) {
  return formatShape(ArrayRef<int64_t>(dims));
}

/// Applies `--shape` overrides to the graph inputs.
LogicalResult applyShapeOverrides(onnx::GraphProto &graph,
                                  const ImportOptions &opts,
                                  std::string &message) {
  llvm::StringSet<> initializers;
  for (const onnx::TensorProto &init : graph.initializer())
    initializers.insert(init.name());
  for (const auto &[name, dims] : opts.shapes) {
    onnx::ValueInfoProto *input = nullptr;
    std::string inputNames;
    for (onnx::ValueInfoProto &candidate : *graph.mutable_input()) {
      if (initializers.contains(candidate.name()))
        continue;
      if (candidate.name() == name)
        input = &candidate;
      inputNames += (inputNames.empty() ? "" : ", ") + candidate.name();
    }
    std::string option = "--shape " + name + "=" + formatDims(dims);
    if (!input) {
      message = option + ": the model has no input '" + name +
                "' (inputs: " + inputNames + ")";
      return failure();
    }
    onnx::TypeProto_Tensor *tensor =
        input->mutable_type()->mutable_tensor_type();
    if (tensor->has_shape()) {
      const onnx::TensorShapeProto &shape = tensor->shape();
      if (size_t(shape.dim_size()) != dims.size()) {
        message = "shape mismatch: " + option + " has rank " +
                  std::to_string(dims.size()) + " but input '" + name +
                  "' has rank " + std::to_string(shape.dim_size());
        return failure();
      }
      for (auto [i, dim] : llvm::enumerate(shape.dim())) {
        if (dim.has_dim_value() && dim.dim_value() != dims[i]) {
          message = "shape mismatch: " + option + " but input '" + name +
                    "' has dimension " + std::to_string(i) + " of size " +
                    std::to_string(dim.dim_value());
          return failure();
        }
      }
    }
    onnx::TensorShapeProto *shape = tensor->mutable_shape();
    shape->clear_dim();
    for (int64_t d : dims)
      shape->add_dim()->set_dim_value(d);
  }
  return success();
}

/// Rewrites libonnx's "[ShapeInferenceError] (op_type:MatMul, node name: mm):
/// [ShapeInferenceError] msg" as "node 'mm' (MatMul): shape inference: msg".
std::string describeInferenceError(StringRef what) {
  std::string text = what.str();
  for (StringRef tag : {"[ShapeInferenceError] ", "[TypeInferenceError] ",
                        "[ValidationError] "})
    for (size_t pos; (pos = text.find(tag.str())) != std::string::npos;)
      text.erase(pos, tag.size());
  StringRef body = StringRef(text).trim();
  if (body.consume_front("(op_type:")) {
    auto [opType, afterOp] = body.split(", node name: ");
    auto [nodeName, message] = afterOp.split("): ");
    if (!message.empty())
      return "node '" + nodeName.str() + "' (" + opType.str() +
             "): shape inference: " + message.trim().str();
  }
  return "shape inference: " + body.str();
}

/// Checks what libonnx's shape inference takes for granted, which it would
/// otherwise dereference or index blindly on a damaged model: every node is an
/// operator the importer converts (so no subgraphs), matches its schema at the
/// model's opset (arity, attribute types), and reads only tensors defined
/// before it. Value infos without a tensor type (hints only) are dropped.
LogicalResult checkBeforeInference(onnx::ModelProto &model, int64_t opset,
                                   std::string &message) {
  onnx::GraphProto &graph = *model.mutable_graph();
  llvm::StringSet<> defined;
  for (const onnx::ValueInfoProto &input : graph.input())
    defined.insert(input.name());
  for (const onnx::TensorProto &init : graph.initializer())
    defined.insert(init.name());
  const OpTable &table = getOpTable();
  for (auto [index, node] : llvm::enumerate(graph.node())) {
    std::string who = describeNode(node, index);
    if (!node.domain().empty() && node.domain() != "ai.onnx") {
      message = who + ": unsupported operator (domain '" + node.domain() + "')";
      return failure();
    }
    if (!table.count(node.op_type())) {
      message = who + ": unsupported operator";
      return failure();
    }
    const onnx::OpSchema *schema =
        onnx::OpSchemaRegistry::Schema(node.op_type(), int(opset), "");
    if (!schema) {
      message = who + ": not defined at opset " + std::to_string(opset);
      return failure();
    }
    try {
      schema->Verify(node);
    } catch (const std::exception &e) {
      message = who + ": " + describeInferenceError(e.what());
      return failure();
    }
    for (const std::string &input : node.input()) {
      if (!input.empty() && !defined.count(input)) {
        message = who + ": input '" + input +
                  "' is not defined (nodes must come after the nodes whose "
                  "outputs they read: a graph in topological order, no "
                  "cycles)";
        return failure();
      }
    }
    for (const std::string &output : node.output())
      defined.insert(output);
  }
  auto *infos = graph.mutable_value_info();
  infos->erase(std::remove_if(infos->begin(), infos->end(),
                              [](const onnx::ValueInfoProto &info) {
                                return !info.type().has_tensor_type();
                              }),
               infos->end());
  return success();
}

OwningOpRef<ModuleOp> importImpl(MLIRContext &ctx, StringRef path,
                                 const ImportOptions &opts,
                                 std::string &error) {
  auto fail = [&](const Twine &message) -> OwningOpRef<ModuleOp> {
    error = (path + ": " + message).str();
    return nullptr;
  };

  auto buffer = llvm::MemoryBuffer::getFile(path, /*IsText=*/false,
                                            /*RequiresNullTerminator=*/false);
  if (!buffer)
    return fail("cannot open: " + buffer.getError().message());
  size_t size = (*buffer)->getBufferSize();
  if (size > size_t(INT_MAX))
    return fail("model file exceeds 2 GiB; store the weights as ONNX "
                "external data");

  onnx::ModelProto model;
  {
    ProtobufLogSilencer silencer;
    if (!model.ParseFromArray((*buffer)->getBufferStart(), int(size)))
      return fail("not a valid ONNX model (protobuf parse failed)");
  }
  buffer->reset();
  if (!model.has_graph() || model.ir_version() <= 0)
    return fail("not a valid ONNX model (no graph or IR version)");

  int64_t opset = -1;
  for (const onnx::OperatorSetIdProto &import : model.opset_import())
    if (import.domain().empty() || import.domain() == "ai.onnx")
      opset = import.version();
  if (opset < 0)
    return fail("the model imports no opset of the default ONNX domain");
  if (opset < kMinOpset || opset > kMaxOpset)
    return fail("opset " + Twine(opset) +
                " of the default ONNX domain is not supported (supported: " +
                Twine(kMinOpset) + " to " + Twine(kMaxOpset) + ")");

  std::string message;
  if (failed(applyShapeOverrides(*model.mutable_graph(), opts, message)) ||
      failed(checkBeforeInference(model, opset, message)))
    return fail(message);

  try {
    onnx::ShapeInferenceOptions options(/*check_type_val=*/false,
                                        /*strict_mode_val=*/0,
                                        /*data_prop_val=*/true);
    onnx::shape_inference::InferShapes(
        model, onnx::OpSchemaRegistry::Instance(), options);
  } catch (const std::exception &e) {
    return fail(describeInferenceError(e.what()));
  }

  ctx.loadDialect<arith::ArithDialect, func::FuncDialect, linalg::LinalgDialect,
                  tensor::TensorDialect, tosa::TosaDialect>();
  GraphConverter converter(ctx, model, path, opset, error);
  return converter.convert();
}

} // namespace

OwningOpRef<ModuleOp>
qforge::importer::importONNXFile(MLIRContext &ctx, StringRef path,
                                 const ImportOptions &opts,
                                 std::string &error) {
  error.clear();
  OwningOpRef<ModuleOp> module;
  try {
    module = importImpl(ctx, path, opts, error);
  } catch (const std::bad_alloc &) {
    error = (path + ": out of memory").str();
  } catch (const std::exception &e) {
    error = (path + ": " + e.what()).str();
  } catch (...) {
    error = (path + ": unknown error while importing").str();
  }
  if (!error.empty()) {
    error = oneLine(error);
    return nullptr;
  }
  return module;
}
