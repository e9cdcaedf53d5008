//===- GraphConverter.h - ONNX graph to graph IR (internal) -----*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// Internal interface of the importer. `GraphConverter` walks the nodes of an
// ONNX graph in order and dispatches each one through an operator table to a
// conversion function that sees the node through a `NodeContext`: typed
// inputs, attributes, known constants, outputs, and helpers that emit TOSA
// with numpy broadcasting, reshapes and constants.
//
// Adding an operator: write `LogicalResult convertFoo(NodeContext &)` in the
// Ops*.cpp file of its family and add it to that file's register function.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_LIB_IMPORTER_GRAPHCONVERTER_H
#define QFORGE_LIB_IMPORTER_GRAPHCONVERTER_H

#include "mlir/IR/Builders.h"
#include "mlir/IR/BuiltinOps.h"
#include "mlir/IR/BuiltinTypes.h"
#include "mlir/IR/OwningOpRef.h"
#include "mlir/Support/LLVM.h"
#include "llvm/ADT/STLFunctionalExtras.h"
#include "llvm/ADT/SmallVector.h"
#include "llvm/ADT/StringMap.h"
#include "llvm/ADT/Twine.h"

#include "llvm/Support/MathExtras.h"

#include <limits>
#include <onnx/onnx_pb.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace qforge::importer::detail {

//===----------------------------------------------------------------------===//
// Types and constants
//===----------------------------------------------------------------------===//

/// The MLIR element type of an ONNX `TensorProto::DataType`, or null when the
/// importer has none (strings, complex numbers).
mlir::Type getElementType(mlir::MLIRContext *ctx, int32_t onnxType);

/// The ONNX spelling of a data type, e.g. "FLOAT16".
std::string getONNXTypeName(int32_t onnxType);

/// Bytes per element in raw (little-endian) storage; 8 for index.
int64_t getElementByteWidth(mlir::Type elementType);

/// "1x4x3", "scalar" for rank 0.
std::string formatShape(llvm::ArrayRef<int64_t> shape);

/// Product of the dimensions of a shape (1 for rank 0); dynamic
/// (`ShapedType::kDynamic`) when any dimension is dynamic.
/// Shapes from a model can be hostile: a product beyond 2^63 - 1 saturates
/// (every node's results are checked against that limit after conversion).
inline int64_t product(llvm::ArrayRef<int64_t> dims) {
  int64_t n = 1;
  for (int64_t d : dims)
    if (mlir::ShapedType::isDynamic(d))
      return mlir::ShapedType::kDynamic;
  for (int64_t d : dims)
    if (d == 0)
      return 0;
  for (int64_t d : dims)
    if (llvm::MulOverflow(n, d, n))
      return std::numeric_limits<int64_t>::max();
  return n;
}

/// Number of dynamic dimensions of `shape`.
inline int64_t countDynamic(llvm::ArrayRef<int64_t> shape) {
  return llvm::count_if(shape, mlir::ShapedType::isDynamic);
}

/// One element of a host tensor, widened: `isFloat` selects `f` (float
/// types) or `i` (integer and bool types).
struct HostValue {
  double f = 0.0;
  int64_t i = 0;
  bool isFloat = false;

  static HostValue ofFloat(double v) { return {v, 0, true}; }
  static HostValue ofInt(int64_t v) { return {0.0, v, false}; }
  double asDouble() const { return isFloat ? f : double(i); }
  /// Truncates a float toward zero (NaN and out-of-range values saturate).
  int64_t asInt() const;
  bool asBool() const { return isFloat ? f != 0.0 : i != 0; }
};

/// A tensor whose contents are known at import time: an initializer, the
/// value of a Constant node, or a value folded on the host. The bytes are
/// little-endian raw storage; they either live in the ONNX model (which
/// outlives the converter) or in storage the tensor shares.
class ConstTensor {
public:
  ConstTensor() = default;
  /// Views `bytes`, which must outlive every copy of this tensor.
  ConstTensor(mlir::RankedTensorType type, llvm::ArrayRef<char> bytes);
  /// Owns `data`.
  ConstTensor(mlir::RankedTensorType type, std::vector<char> data);

  mlir::RankedTensorType getType() const { return type; }
  llvm::ArrayRef<int64_t> getShape() const { return type.getShape(); }
  mlir::Type getElementType() const { return type.getElementType(); }
  int64_t getNumElements() const { return type.getNumElements(); }
  llvm::ArrayRef<char> getBytes() const { return bytes; }
  /// The owned storage that `getBytes()` points into; null when the bytes
  /// are a view of the ONNX model.
  const std::shared_ptr<const std::vector<char>> &getStorage() const {
    return storage;
  }

  /// Whether the contents are (derived from) a model initializer: a weight
  /// is always emitted as a `dense_resource` blob, however small.
  bool isWeight() const { return weight; }
  void setWeight(bool value) { weight = value; }

  /// Integer contents widened to int64; failure for a float tensor.
  mlir::FailureOr<llvm::SmallVector<int64_t>> getIntValues() const;
  /// Float contents as double; failure for an integer tensor.
  mlir::FailureOr<llvm::SmallVector<double>> getFloatValues() const;
  /// Every element widened to a HostValue (int64 or double).
  llvm::SmallVector<HostValue> getHostValues() const;
  /// Whether every element has the same bytes.
  bool isSplat() const;

  /// A tensor of `type` holding `values`, converted to the element type
  /// (floats round to nearest even, floats to integers truncate toward zero,
  /// integers wrap, anything to bool is `!= 0`).
  static ConstTensor fromHostValues(mlir::RankedTensorType type,
                                    llvm::ArrayRef<HostValue> values);
  static ConstTensor fromInts(mlir::RankedTensorType type,
                              llvm::ArrayRef<int64_t> values);
  /// A tensor of `type` whose every element is `value`.
  static ConstTensor splat(mlir::RankedTensorType type, HostValue value);

  /// The contents with dimensions permuted (`perm[i]` is the source dimension
  /// of result dimension i).
  ConstTensor transposed(llvm::ArrayRef<int64_t> perm) const;
  /// The same bytes under another static shape of equal element count.
  ConstTensor reshaped(llvm::ArrayRef<int64_t> shape) const;
  /// A tensor of `shape` whose element at each index is the element of this
  /// tensor at the linear index `source(index)`.
  ConstTensor
  remapped(llvm::ArrayRef<int64_t> shape,
           llvm::function_ref<int64_t(llvm::ArrayRef<int64_t>)> source) const;
  /// Numpy broadcast to `shape` (ranks may differ).
  ConstTensor broadcastTo(llvm::ArrayRef<int64_t> shape) const;
  /// Concatenation along `axis`; all parts share element type and rank.
  static ConstTensor concat(llvm::ArrayRef<const ConstTensor *> parts,
                            int64_t axis);

private:
  mlir::RankedTensorType type;
  llvm::ArrayRef<char> bytes;
  std::shared_ptr<const std::vector<char>> storage;
  bool weight = false;
};

/// Folds an elementwise operation of host tensors with numpy broadcasting:
/// `fn` maps the widened inputs at one position to the result element, which
/// is converted to `resultElementType`. The shapes must broadcast.
ConstTensor
foldElementwise(llvm::ArrayRef<const ConstTensor *> inputs,
                mlir::Type resultElementType,
                llvm::function_ref<HostValue(llvm::ArrayRef<HostValue>)> fn);

/// Numpy broadcast of shapes, or failure when two static dimensions differ
/// and neither is 1. A dynamic dimension broadcast with 1 stays dynamic,
/// with a static N becomes N, and two dynamic dimensions are assumed equal.
mlir::FailureOr<llvm::SmallVector<int64_t>>
broadcastShapeList(llvm::ArrayRef<llvm::ArrayRef<int64_t>> shapes);

/// Reads a TensorProto (raw or typed fields, or external data relative to
/// `modelDir`) into a ConstTensor. On failure sets `error` (no file prefix).
mlir::FailureOr<ConstTensor> readTensorProto(mlir::MLIRContext *ctx,
                                             const onnx::TensorProto &proto,
                                             llvm::StringRef modelDir,
                                             std::string &error);

/// A valid MLIR resource key made from an ONNX tensor name.
std::string sanitizeResourceName(llvm::StringRef name);

//===----------------------------------------------------------------------===//
// Shape values
//===----------------------------------------------------------------------===//

/// One element of a shape value: a known integer, or dimension `dim` of the
/// tensor `source` (materialised by `tensor.dim`), or an `index` value
/// `source` computed at run time (`dim` is -1); never negative.
struct SymDim {
  int64_t value = 0;
  mlir::Value source;
  int64_t dim = 0;

  static SymDim known(int64_t v) { return {v, mlir::Value(), 0}; }
  /// Dimension `d` of `tensor`: known when static.
  static SymDim of(mlir::Value tensor, int64_t d);
  /// The `index` value `v`.
  static SymDim ofIndex(mlir::Value v) { return {0, v, -1}; }
  bool isKnown() const { return !source; }
  bool operator==(const SymDim &o) const {
    return source == o.source && (source ? dim == o.dim : value == o.value);
  }
};

/// A 0-D or 1-D integer tensor computed from shapes (Shape and what Gather,
/// Unsqueeze, Concat, Slice, Cast... make of it), kept on the host element
/// by element so that its dynamic elements stay `tensor.dim`s of the
/// tensors they measure. Fully known ones are ConstTensors instead.
struct ShapeValue {
  mlir::RankedTensorType type;
  llvm::SmallVector<SymDim> elements;

  bool isKnown() const {
    return llvm::all_of(elements, [](const SymDim &d) { return d.isKnown(); });
  }
};

//===----------------------------------------------------------------------===//
// Conversion
//===----------------------------------------------------------------------===//

class GraphConverter;
class NodeContext;

/// Converts one ONNX node; reports failure through `NodeContext::fail`.
using ConvertFn = mlir::LogicalResult (*)(NodeContext &);

/// An entry of the operator table: the function and the arity it accepts
/// (optional inputs count up to `maxInputs`; absent ones have empty names).
struct OpConverter {
  ConvertFn convert;
  unsigned minInputs;
  unsigned maxInputs;
  unsigned minOutputs = 1;
  unsigned maxOutputs = 1;
};

using OpTable = llvm::StringMap<OpConverter>;

// Each family of operators registers itself (Ops*.cpp).
void registerElementwiseOps(OpTable &table);
void registerLinearOps(OpTable &table);
void registerShapeOps(OpTable &table);
void registerIndexingOps(OpTable &table);
void registerReductionOps(OpTable &table);

/// Converts a shape-arithmetic node (Gather, Unsqueeze, Squeeze, Reshape,
/// Concat, Slice, Cast, Identity, Add, Sub, Mul) whose inputs are shape
/// values or constants into a shape value. Sets `handled` to false (and
/// succeeds) when the node is not one it folds.
mlir::LogicalResult convertShapeValueOp(NodeContext &ctx, bool &handled);

/// The table of all supported operators of the default domain.
const OpTable &getOpTable();

/// The node's name, or "#index" for a node without one.
std::string nodeName(const onnx::NodeProto &node, int index);
/// "node 'name' (OpType)".
std::string describeNode(const onnx::NodeProto &node, int index);

/// What a conversion function sees of its node.
class NodeContext {
public:
  NodeContext(GraphConverter &graph, const onnx::NodeProto &node,
              llvm::StringRef displayName, mlir::Location loc, int64_t opset);

  const onnx::NodeProto &getNode() const { return node; }
  llvm::StringRef getOpType() const { return node.op_type(); }
  int64_t getOpset() const { return opset; }
  mlir::OpBuilder &getBuilder();
  mlir::Location getLoc() const { return loc; }
  mlir::MLIRContext *getContext() const { return loc.getContext(); }
  /// The directory external data is relative to.
  llvm::StringRef getModelDir() const;

  /// Records "node 'n' (Op): <message>" as the import error; returns failure.
  mlir::LogicalResult fail(const llvm::Twine &message);
  /// Fails (naming `what`) when `type` has dynamic dimensions, for what the
  /// importer converts only with static shapes.
  mlir::LogicalResult requireStatic(mlir::RankedTensorType type,
                                    const llvm::Twine &what);

  //===--------------------------------------------------------------------===//
  // Inputs and outputs
  //===--------------------------------------------------------------------===//

  unsigned getNumInputs() const { return node.input_size(); }
  /// Whether input `i` is given (present with a non-empty name).
  bool hasInput(unsigned i) const;
  /// The SSA value of input `i` (materialising a constant if needed).
  mlir::FailureOr<mlir::Value> getInput(unsigned i);
  /// Like getInput, and fails unless the type is a ranked tensor (dynamic
  /// dimensions allowed).
  mlir::FailureOr<mlir::TypedValue<mlir::RankedTensorType>>
  getTensorInput(unsigned i);
  /// The contents of input `i` when known at import time, else null.
  const ConstTensor *getConstantInput(unsigned i);
  /// The ONNX name of input `i`.
  llvm::StringRef getInputName(unsigned i) const { return node.input(i); }
  /// The type of input `i` (constant, shape value or SSA value) without
  /// materialising it; fails unless it is a ranked tensor.
  mlir::FailureOr<mlir::RankedTensorType> getInputType(unsigned i);
  /// The contents of every given input when all are known at import time.
  std::optional<llvm::SmallVector<const ConstTensor *>> getConstantInputs();
  /// Input `i` as a shape value: a symbolic one, or a 0-D/1-D integer
  /// constant; nullopt otherwise.
  std::optional<ShapeValue> getShapeInput(unsigned i);
  /// Whether input `i` is a shape value with a dynamic element.
  bool isSymbolicInput(unsigned i);
  /// Whether a computed (not merely rearranged) host result of
  /// `numElements` is folded at import rather than emitted as IR.
  static bool isFoldable(int64_t numElements);
  /// Whether a constant of this static shape is small enough to fold.
  static bool isFoldable(llvm::ArrayRef<int64_t> shape);

  unsigned getNumOutputs() const { return node.output_size(); }
  /// Binds output `i` to `value`.
  void setOutput(unsigned i, mlir::Value value);
  /// Binds output `i` to a host constant (materialised only when used).
  void setConstantOutput(unsigned i, ConstTensor value);
  /// Binds output `i` to a shape value (a constant when fully known).
  void setShapeOutput(unsigned i, ShapeValue value);
  /// Makes output `i` another name of input `j` (a constant stays one
  /// constant, under its original name).
  mlir::LogicalResult aliasOutput(unsigned i, unsigned j);

  //===--------------------------------------------------------------------===//
  // Attributes
  //===--------------------------------------------------------------------===//

  const onnx::AttributeProto *getAttr(llvm::StringRef name) const;
  int64_t getIntAttr(llvm::StringRef name, int64_t defaultValue) const;
  float getFloatAttr(llvm::StringRef name, float defaultValue) const;
  std::optional<llvm::SmallVector<int64_t>>
  getIntsAttr(llvm::StringRef name) const;
  std::string getStringAttr(llvm::StringRef name,
                            llvm::StringRef defaultValue) const;

  /// `axis` in [-rank, rank) made non-negative; fails (naming `what`)
  /// outside that range.
  mlir::FailureOr<int64_t> normalizeAxis(int64_t axis, int64_t rank,
                                         llvm::StringRef what = "axis");
  /// Axes given by the constant input `inputIndex` when present, else by
  /// the attribute `attrName`; nullopt when neither is given. Normalised to
  /// [0, rank) and checked for repeats; fails when the input is not a
  /// constant.
  mlir::FailureOr<std::optional<llvm::SmallVector<int64_t>>>
  getAxes(unsigned inputIndex, llvm::StringRef attrName, int64_t rank);

  //===--------------------------------------------------------------------===//
  // Emission helpers (all at this node's location)
  //===--------------------------------------------------------------------===//

  /// `tosa.const_shape` of `dims`.
  mlir::Value constShape(llvm::ArrayRef<int64_t> dims);
  /// Inline `tosa.const` of `shape` filled with `value`.
  mlir::Value splat(mlir::Type elementType, double value,
                    llvm::ArrayRef<int64_t> shape);
  /// Materialises a host constant at this point (not cached).
  mlir::Value constant(const ConstTensor &value, llvm::StringRef name);
  /// An `index` value of `dim` (`arith.constant` or `tensor.dim`).
  mlir::Value dimValue(const SymDim &dim);
  /// Dimension `d` of `value` as an `index` value.
  mlir::Value dimValue(mlir::Value value, int64_t d) {
    return dimValue(SymDim::of(value, d));
  }
  /// Reshape to `shape`; returns `value` when the shape is the same. With at
  /// most one dynamic dimension it is a `tosa.reshape` (-1 for the dynamic
  /// one); with more, the dynamic dimensions of `shape` must be those of
  /// `value` in order (units inserted or removed) and it is a
  /// `tensor.reshape`.
  mlir::Value reshape(mlir::Value value, llvm::ArrayRef<int64_t> shape);
  /// `tensor.reshape` of `value` to the dimensions `dims`.
  mlir::Value reshapeTo(mlir::Value value, llvm::ArrayRef<SymDim> dims);
  /// Reshapes to `rank` by prepending unit dimensions (numpy broadcasting).
  mlir::Value expandRank(mlir::Value value, int64_t rank);
  /// Repeats unit dimensions (`tosa.tile`) so `value` has `shape`; ranks must
  /// agree and every dimension must be equal or 1.
  mlir::Value broadcastTo(mlir::Value value, llvm::ArrayRef<int64_t> shape);
  /// `tosa.transpose`.
  mlir::Value transpose(mlir::Value value, llvm::ArrayRef<int32_t> perms);
  /// Scalar zero point of `elementType` for `tosa.matmul`.
  mlir::Value zeroPoint(mlir::Type elementType);
  /// `tosa.matmul` of [B,M,K] x [B,K,N] -> [B,M,N].
  mlir::Value matmul3D(mlir::Value a, mlir::Value b);

  /// `tosa.cast` to `elementType`; returns `value` when it already has it.
  mlir::Value castTo(mlir::Value value, mlir::Type elementType);
  /// A one-operand TOSA op whose result has the operand's type.
  template <typename OpTy> mlir::Value unary(mlir::Value value) {
    return OpTy::create(getBuilder(), loc, value.getType(), value);
  }
  /// `tosa.negate` (with zero points of the element type).
  mlir::Value negate(mlir::Value value);
  /// A constant of `value`'s element type and rank, every dimension 1.
  mlir::Value scalarLike(mlir::Value like, double value);
  /// `tosa.reduce_*` along `axis`, which keeps size 1.
  enum class Reduce { Sum, Max, Min, Prod, All, Any };
  mlir::Value reduce(Reduce kind, mlir::Value value, int64_t axis);
  /// `tosa.slice` of `size` elements from `start`; a dynamic size takes the
  /// rest of a dimension (`tensor.extract_slice`).
  mlir::Value slice(mlir::Value value, llvm::ArrayRef<int64_t> start,
                    llvm::ArrayRef<int64_t> size);
  /// `tosa.concat` along `axis` (one part is returned as is).
  mlir::Value concat(mlir::ValueRange parts, int64_t axis);
  /// `tosa.select` with numpy broadcasting of all three operands.
  mlir::FailureOr<mlir::Value> select(mlir::Value cond, mlir::Value onTrue,
                                      mlir::Value onFalse);
  /// A `linalg.generic` over `inputs` (numpy-broadcast to `shape`) whose
  /// body computes an element of `elementType` from the input elements; for
  /// what TOSA cannot express (integer division other than i32, remainders).
  mlir::Value elementwiseGeneric(
      mlir::ValueRange inputs, llvm::ArrayRef<int64_t> shape,
      mlir::Type elementType,
      llvm::function_ref<mlir::Value(mlir::OpBuilder &, mlir::Location,
                                     mlir::ValueRange)>
          body);

  /// Numpy broadcast of two shapes; fails (with a message naming both) when
  /// they are incompatible.
  mlir::FailureOr<llvm::SmallVector<int64_t>>
  broadcastShapes(llvm::ArrayRef<int64_t> a, llvm::ArrayRef<int64_t> b);

  /// Emits a binary elementwise op with numpy broadcasting: checks the
  /// element types agree, reshapes the lower-rank operand to equal rank and
  /// computes the result type. `kind` selects the op; comparisons give i1.
  enum class Binary {
    Add,
    Sub,
    Mul,
    Div,
    Max,
    Min,
    Pow,
    Mod,
    FMod,
    Equal,
    Greater,
    GreaterEqual,
    Less,
    LessEqual,
    And,
    Or,
    Xor,
  };
  mlir::FailureOr<mlir::Value> binary(Binary kind, mlir::Value a,
                                      mlir::Value b);

  /// An error found by a helper that returns a value (reshape): the node
  /// fails with it once its converter returns. Empty when none.
  const std::string &deferredError() const { return deferred; }

private:
  GraphConverter &graph;
  const onnx::NodeProto &node;
  std::string displayName;
  mlir::Location loc;
  int64_t opset;
  std::string deferred;
};

/// Builds `func.func @main` from an ONNX graph whose inputs have static
/// shapes (after --shape overrides and shape inference).
class GraphConverter {
public:
  GraphConverter(mlir::MLIRContext &ctx, onnx::ModelProto &model,
                 llvm::StringRef path, int64_t opset, std::string &error);

  mlir::OwningOpRef<mlir::ModuleOp> convert();

  /// Records "<path>: <message>" as the error; returns failure.
  mlir::LogicalResult fail(const llvm::Twine &message);

  mlir::OpBuilder &getBuilder() { return builder; }
  mlir::Location getFileLoc() const { return fileLoc; }
  llvm::StringRef getModelDir() const { return modelDir; }

  /// The SSA value of the ONNX tensor `name`; constants are materialised at
  /// the insertion point on first use.
  mlir::FailureOr<mlir::Value> lookup(llvm::StringRef name,
                                      const llvm::Twine &who);
  /// The host contents of `name` when known at import time, else null.
  const ConstTensor *lookupConstant(llvm::StringRef name);
  void bind(llvm::StringRef name, mlir::Value value);
  void bindConstant(llvm::StringRef name, ConstTensor value);
  void bindShape(llvm::StringRef name, ShapeValue value);
  /// The shape value of `name` when it has dynamic elements, else null.
  const ShapeValue *lookupShape(llvm::StringRef name);
  /// Makes `name` refer to the same tensor as `existing`.
  mlir::LogicalResult alias(llvm::StringRef name, llvm::StringRef existing,
                            const llvm::Twine &who);

  /// Emits a `tosa.const` for `value` named `name` (`qf.name`): a
  /// `dense_resource` blob for weights of more than one element and for
  /// other tensors of more than 16 elements, else an inline `dense`.
  mlir::Value materialize(const ConstTensor &value, llvm::StringRef name,
                          mlir::Location loc);
  /// Emits a shape value as `tensor.from_elements`.
  mlir::Value materialize(const ShapeValue &value, mlir::Location loc);

private:
  mlir::LogicalResult declareInitializers();
  mlir::LogicalResult buildSignature(llvm::SmallVectorImpl<mlir::Type> &types,
                                     llvm::SmallVectorImpl<std::string> &names);
  mlir::LogicalResult convertNode(const onnx::NodeProto &node, int index);
  mlir::LogicalResult checkInferredShapes(const onnx::NodeProto &node,
                                          const llvm::Twine &who);

  struct ValueEntry {
    mlir::Value value;
    std::optional<ConstTensor> constant;
    /// Set for another name of a constant (Identity); the entry of that
    /// name holds the value.
    std::string aliasOf;
    /// A shape value with dynamic elements (materialised when used).
    std::optional<ShapeValue> shape;
  };
  ValueEntry *find(llvm::StringRef name);

  mlir::MLIRContext &ctx;
  onnx::ModelProto &model;
  std::string path;
  std::string modelDir;
  int64_t opset;
  std::string &error;
  mlir::OpBuilder builder;
  mlir::Location fileLoc;
  llvm::StringMap<ValueEntry> values;
  /// Static shapes ONNX shape inference found (value_info, outputs).
  llvm::StringMap<const onnx::TypeProto *> inferredTypes;
};

} // namespace qforge::importer::detail

#endif // QFORGE_LIB_IMPORTER_GRAPHCONVERTER_H
