//===- ConstTensor.cpp - ONNX tensors known at import time ----------------===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// Element types, TensorProto decoding (raw, typed and external data) and the
// host-side tensor the converter folds and materialises.
//
//===----------------------------------------------------------------------===//

#include "GraphConverter.h"

#include "mlir/IR/BuiltinTypes.h"
#include "llvm/ADT/StringExtras.h"
#include "llvm/Support/Endian.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MathExtras.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Path.h"

#include <cmath>
#include <cstring>
#include <limits>

using namespace mlir;
using namespace qforge::importer::detail;

using DataType = onnx::TensorProto::DataType;

Type qforge::importer::detail::getElementType(MLIRContext *ctx,
                                              int32_t onnxType) {
  Builder b(ctx);
  switch (onnxType) {
  case onnx::TensorProto::FLOAT:
    return b.getF32Type();
  case onnx::TensorProto::FLOAT16:
    return b.getF16Type();
  case onnx::TensorProto::BFLOAT16:
    return b.getBF16Type();
  case onnx::TensorProto::DOUBLE:
    return b.getF64Type();
  case onnx::TensorProto::INT8:
    return b.getIntegerType(8);
  case onnx::TensorProto::INT16:
    return b.getIntegerType(16);
  case onnx::TensorProto::INT32:
    return b.getIntegerType(32);
  case onnx::TensorProto::INT64:
    return b.getIntegerType(64);
  case onnx::TensorProto::UINT8:
    return b.getIntegerType(8, /*isSigned=*/false);
  case onnx::TensorProto::UINT16:
    return b.getIntegerType(16, /*isSigned=*/false);
  case onnx::TensorProto::UINT32:
    return b.getIntegerType(32, /*isSigned=*/false);
  case onnx::TensorProto::UINT64:
    return b.getIntegerType(64, /*isSigned=*/false);
  case onnx::TensorProto::BOOL:
    return b.getI1Type();
  default:
    return {};
  }
}

std::string qforge::importer::detail::getONNXTypeName(int32_t onnxType) {
  if (onnx::TensorProto::DataType_IsValid(onnxType))
    return onnx::TensorProto::DataType_Name(static_cast<DataType>(onnxType));
  return "type " + std::to_string(onnxType);
}

int64_t qforge::importer::detail::getElementByteWidth(Type elementType) {
  if (!elementType.isIntOrFloat())
    return 8; // index
  unsigned bits = elementType.getIntOrFloatBitWidth();
  return bits <= 8 ? 1 : bits / 8;
}

std::string qforge::importer::detail::formatShape(ArrayRef<int64_t> shape) {
  if (shape.empty())
    return "scalar";
  std::string s;
  for (auto [i, d] : llvm::enumerate(shape)) {
    if (i)
      s += 'x';
    s += ShapedType::isDynamic(d) ? "?" : std::to_string(d);
  }
  return s;
}

std::string qforge::importer::detail::sanitizeResourceName(StringRef name) {
  std::string out;
  out.reserve(name.size() + 1);
  for (char c : name)
    out += (llvm::isAlnum(c) || c == '_' || c == '.') ? c : '_';
  if (out.empty() || !(llvm::isAlpha(out[0]) || out[0] == '_'))
    out.insert(out.begin(), '_');
  return out;
}

//===----------------------------------------------------------------------===//
// ConstTensor
//===----------------------------------------------------------------------===//

ConstTensor::ConstTensor(RankedTensorType type, ArrayRef<char> bytes)
    : type(type), bytes(bytes) {}

ConstTensor::ConstTensor(RankedTensorType type, std::vector<char> data)
    : type(type),
      storage(std::make_shared<const std::vector<char>>(std::move(data))) {
  bytes = ArrayRef<char>(storage->data(), storage->size());
}

FailureOr<SmallVector<int64_t>> ConstTensor::getIntValues() const {
  auto intType = dyn_cast<IntegerType>(getElementType());
  if (!intType)
    return failure();
  int64_t width = getElementByteWidth(intType);
  bool isUnsigned = intType.isUnsigned() || intType.getWidth() == 1;
  SmallVector<int64_t> out;
  out.reserve(getNumElements());
  const char *p = bytes.data();
  for (int64_t i = 0, e = getNumElements(); i < e; ++i, p += width) {
    switch (width) {
    case 1:
      out.push_back(isUnsigned ? int64_t(uint8_t(*p)) : int64_t(int8_t(*p)));
      break;
    case 2: {
      uint16_t v = llvm::support::endian::read16le(p);
      out.push_back(isUnsigned ? int64_t(v) : int64_t(int16_t(v)));
      break;
    }
    case 4: {
      uint32_t v = llvm::support::endian::read32le(p);
      out.push_back(isUnsigned ? int64_t(v) : int64_t(int32_t(v)));
      break;
    }
    default:
      out.push_back(int64_t(llvm::support::endian::read64le(p)));
      break;
    }
  }
  return out;
}

FailureOr<SmallVector<double>> ConstTensor::getFloatValues() const {
  auto floatType = dyn_cast<FloatType>(getElementType());
  if (!floatType)
    return failure();
  int64_t width = getElementByteWidth(floatType);
  SmallVector<double> out;
  out.reserve(getNumElements());
  const char *p = bytes.data();
  for (int64_t i = 0, e = getNumElements(); i < e; ++i, p += width) {
    llvm::APInt raw(width * 8, width == 8 ? llvm::support::endian::read64le(p)
                               : width == 4
                                   ? llvm::support::endian::read32le(p)
                                   : llvm::support::endian::read16le(p));
    llvm::APFloat value(floatType.getFloatSemantics(), raw);
    out.push_back(value.convertToDouble());
  }
  return out;
}

int64_t HostValue::asInt() const {
  if (!isFloat)
    return i;
  if (std::isnan(f))
    return 0;
  if (f >= 9.2233720368547758e18)
    return std::numeric_limits<int64_t>::max();
  if (f <= -9.2233720368547758e18)
    return std::numeric_limits<int64_t>::min();
  return int64_t(f);
}

SmallVector<HostValue> ConstTensor::getHostValues() const {
  SmallVector<HostValue> out;
  out.reserve(getNumElements());
  if (isa<FloatType>(getElementType())) {
    SmallVector<double> values = *getFloatValues();
    for (double v : values)
      out.push_back(HostValue::ofFloat(v));
  } else {
    SmallVector<int64_t> values = *getIntValues();
    for (int64_t v : values)
      out.push_back(HostValue::ofInt(v));
  }
  return out;
}

bool ConstTensor::isSplat() const {
  int64_t width = getElementByteWidth(getElementType());
  for (int64_t i = 1, e = getNumElements(); i < e; ++i)
    if (std::memcmp(&bytes[i * width], bytes.data(), width) != 0)
      return false;
  return true;
}

/// Writes `value` as one element of `elementType` at `out`.
static void encodeElement(Type elementType, const HostValue &value, char *out) {
  int64_t width = getElementByteWidth(elementType);
  uint64_t bits;
  if (auto floatType = dyn_cast<FloatType>(elementType)) {
    llvm::APFloat f(value.asDouble());
    bool losesInfo;
    f.convert(floatType.getFloatSemantics(), llvm::APFloat::rmNearestTiesToEven,
              &losesInfo);
    bits = f.bitcastToAPInt().getZExtValue();
  } else if (elementType.isInteger(1)) {
    bits = value.asBool() ? 1 : 0;
  } else {
    bits = uint64_t(value.asInt());
  }
  for (int64_t i = 0; i < width; ++i)
    out[i] = char((bits >> (8 * i)) & 0xff);
}

ConstTensor ConstTensor::fromHostValues(RankedTensorType type,
                                        ArrayRef<HostValue> values) {
  int64_t width = getElementByteWidth(type.getElementType());
  std::vector<char> data(values.size() * width);
  for (auto [i, v] : llvm::enumerate(values))
    encodeElement(type.getElementType(), v, &data[i * width]);
  return ConstTensor(type, std::move(data));
}

ConstTensor ConstTensor::fromInts(RankedTensorType type,
                                  ArrayRef<int64_t> values) {
  SmallVector<HostValue> hostValues;
  for (int64_t v : values)
    hostValues.push_back(HostValue::ofInt(v));
  return fromHostValues(type, hostValues);
}

ConstTensor ConstTensor::splat(RankedTensorType type, HostValue value) {
  int64_t width = getElementByteWidth(type.getElementType());
  std::vector<char> element(width);
  encodeElement(type.getElementType(), value, element.data());
  std::vector<char> data(type.getNumElements() * width);
  for (size_t i = 0; i < data.size(); i += width)
    std::memcpy(&data[i], element.data(), width);
  return ConstTensor(type, std::move(data));
}

ConstTensor
ConstTensor::remapped(ArrayRef<int64_t> shape,
                      function_ref<int64_t(ArrayRef<int64_t>)> source) const {
  auto outType = RankedTensorType::get(shape, getElementType());
  int64_t width = getElementByteWidth(getElementType());
  int64_t n = outType.getNumElements();
  int64_t rank = shape.size();
  std::vector<char> data(n * width);
  SmallVector<int64_t> index(rank, 0);
  for (int64_t out = 0; out < n; ++out) {
    std::memcpy(&data[out * width], &bytes[source(index) * width], width);
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (++index[d] < shape[d])
        break;
      index[d] = 0;
    }
  }
  ConstTensor result(outType, std::move(data));
  result.setWeight(weight);
  return result;
}

/// Row-major strides of `shape`, with 0 for every dimension of size 1 so
/// that the index of a broadcast dimension is ignored; aligned to the last
/// `rank` dimensions of the result.
static SmallVector<int64_t> broadcastStrides(ArrayRef<int64_t> shape,
                                             int64_t rank) {
  SmallVector<int64_t> strides(rank, 0);
  int64_t stride = 1;
  int64_t offset = rank - shape.size();
  for (int64_t d = shape.size() - 1; d >= 0; --d) {
    strides[d + offset] = shape[d] == 1 ? 0 : stride;
    stride *= shape[d];
  }
  return strides;
}

ConstTensor ConstTensor::broadcastTo(ArrayRef<int64_t> shape) const {
  SmallVector<int64_t> strides = broadcastStrides(getShape(), shape.size());
  return remapped(shape, [&](ArrayRef<int64_t> index) {
    int64_t src = 0;
    for (auto [i, s] : llvm::zip_equal(index, strides))
      src += i * s;
    return src;
  });
}

ConstTensor ConstTensor::concat(ArrayRef<const ConstTensor *> parts,
                                int64_t axis) {
  SmallVector<int64_t> shape(parts.front()->getShape());
  shape[axis] = 0;
  bool weight = false;
  for (const ConstTensor *part : parts) {
    shape[axis] += part->getShape()[axis];
    weight |= part->isWeight();
  }
  Type elementType = parts.front()->getElementType();
  int64_t width = getElementByteWidth(elementType);
  int64_t outer = 1;
  for (int64_t d = 0; d < axis; ++d)
    outer *= shape[d];
  std::vector<char> data;
  data.reserve(RankedTensorType::get(shape, elementType).getNumElements() *
               width);
  for (int64_t o = 0; o < outer; ++o) {
    for (const ConstTensor *part : parts) {
      int64_t chunk = outer ? part->getNumElements() / outer * width : 0;
      const char *begin = part->getBytes().data() + o * chunk;
      data.insert(data.end(), begin, begin + chunk);
    }
  }
  ConstTensor result(RankedTensorType::get(shape, elementType),
                     std::move(data));
  result.setWeight(weight);
  return result;
}

FailureOr<SmallVector<int64_t>> qforge::importer::detail::broadcastShapeList(
    ArrayRef<ArrayRef<int64_t>> shapes) {
  size_t rank = 0;
  for (ArrayRef<int64_t> shape : shapes)
    rank = std::max(rank, shape.size());
  SmallVector<int64_t> out(rank, 1);
  for (ArrayRef<int64_t> shape : shapes) {
    size_t offset = rank - shape.size();
    for (auto [i, d] : llvm::enumerate(shape)) {
      int64_t &o = out[i + offset];
      if (d == o || d == 1 || (ShapedType::isDynamic(d) && o != 1))
        continue; // a dynamic dimension against N (or ?) is assumed N
      if (o != 1 && !ShapedType::isDynamic(o))
        return failure();
      o = d;
    }
  }
  return out;
}

ConstTensor qforge::importer::detail::foldElementwise(
    ArrayRef<const ConstTensor *> inputs, Type resultElementType,
    function_ref<HostValue(ArrayRef<HostValue>)> fn) {
  SmallVector<ArrayRef<int64_t>> shapes;
  bool weight = false;
  for (const ConstTensor *input : inputs) {
    shapes.push_back(input->getShape());
    weight |= input->isWeight();
  }
  SmallVector<int64_t> shape = *broadcastShapeList(shapes);
  int64_t rank = shape.size();
  SmallVector<SmallVector<HostValue>> values;
  SmallVector<SmallVector<int64_t>> strides;
  for (const ConstTensor *input : inputs) {
    values.push_back(input->getHostValues());
    strides.push_back(broadcastStrides(input->getShape(), rank));
  }
  auto type = RankedTensorType::get(shape, resultElementType);
  int64_t n = type.getNumElements();
  SmallVector<HostValue> out;
  out.reserve(n);
  SmallVector<int64_t> index(rank, 0);
  SmallVector<HostValue> args(inputs.size());
  for (int64_t e = 0; e < n; ++e) {
    for (size_t k = 0; k < inputs.size(); ++k) {
      int64_t src = 0;
      for (int64_t d = 0; d < rank; ++d)
        src += index[d] * strides[k][d];
      args[k] = values[k][src];
    }
    out.push_back(fn(args));
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (++index[d] < shape[d])
        break;
      index[d] = 0;
    }
  }
  ConstTensor result = ConstTensor::fromHostValues(type, out);
  result.setWeight(weight);
  return result;
}

ConstTensor ConstTensor::transposed(ArrayRef<int64_t> perm) const {
  ArrayRef<int64_t> shape = getShape();
  int64_t rank = shape.size();
  SmallVector<int64_t> outShape(rank);
  for (int64_t i = 0; i < rank; ++i)
    outShape[i] = shape[perm[i]];
  // Strides of the source, in elements.
  SmallVector<int64_t> srcStrides(rank, 1);
  for (int64_t i = rank - 2; i >= 0; --i)
    srcStrides[i] = srcStrides[i + 1] * shape[i + 1];
  int64_t width = getElementByteWidth(getElementType());
  int64_t n = getNumElements();
  std::vector<char> data(n * width);
  SmallVector<int64_t> index(rank, 0);
  for (int64_t out = 0; out < n; ++out) {
    int64_t src = 0;
    for (int64_t d = 0; d < rank; ++d)
      src += index[d] * srcStrides[perm[d]];
    std::memcpy(&data[out * width], &bytes[src * width], width);
    for (int64_t d = rank - 1; d >= 0; --d) {
      if (++index[d] < outShape[d])
        break;
      index[d] = 0;
    }
  }
  ConstTensor result(RankedTensorType::get(outShape, getElementType()),
                     std::move(data));
  result.setWeight(weight);
  return result;
}

ConstTensor ConstTensor::reshaped(ArrayRef<int64_t> shape) const {
  ConstTensor copy = *this;
  copy.type = RankedTensorType::get(shape, getElementType());
  return copy;
}

//===----------------------------------------------------------------------===//
// TensorProto decoding
//===----------------------------------------------------------------------===//

namespace {

/// Appends `value`'s low `width` bytes, little-endian.
void appendLE(std::vector<char> &out, uint64_t value, int64_t width) {
  for (int64_t i = 0; i < width; ++i)
    out.push_back(char((value >> (8 * i)) & 0xff));
}

/// Copies the typed repeated field of `proto` that holds its elements.
bool readTypedData(const onnx::TensorProto &proto, int64_t width,
                   std::vector<char> &out) {
  switch (proto.data_type()) {
  case onnx::TensorProto::FLOAT:
    for (float f : proto.float_data()) {
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      appendLE(out, bits, 4);
    }
    return true;
  case onnx::TensorProto::DOUBLE:
    for (double d : proto.double_data()) {
      uint64_t bits;
      std::memcpy(&bits, &d, 8);
      appendLE(out, bits, 8);
    }
    return true;
  case onnx::TensorProto::INT64:
    for (int64_t v : proto.int64_data())
      appendLE(out, uint64_t(v), 8);
    return true;
  case onnx::TensorProto::UINT32:
  case onnx::TensorProto::UINT64:
    for (uint64_t v : proto.uint64_data())
      appendLE(out, v, width);
    return true;
  case onnx::TensorProto::INT32:
  case onnx::TensorProto::INT16:
  case onnx::TensorProto::INT8:
  case onnx::TensorProto::UINT16:
  case onnx::TensorProto::UINT8:
  case onnx::TensorProto::BOOL:
  case onnx::TensorProto::FLOAT16:
  case onnx::TensorProto::BFLOAT16:
    for (int32_t v : proto.int32_data())
      appendLE(out, uint64_t(uint32_t(v)), width);
    return true;
  default:
    return false;
  }
}

/// Reads external data ("location", "offset", "length") next to the model.
LogicalResult readExternalData(const onnx::TensorProto &proto,
                               StringRef modelDir, int64_t expectedBytes,
                               std::vector<char> &out, std::string &error) {
  std::string location;
  uint64_t offset = 0;
  std::optional<uint64_t> length;
  for (const onnx::StringStringEntryProto &entry : proto.external_data()) {
    if (entry.key() == "location") {
      location = entry.value();
    } else if (entry.key() == "offset" || entry.key() == "length") {
      uint64_t v;
      if (StringRef(entry.value()).getAsInteger(10, v)) {
        error = "external data " + entry.key() + " '" + entry.value() +
                "' is not a number";
        return failure();
      }
      if (entry.key() == "offset")
        offset = v;
      else
        length = v;
    }
  }
  if (location.empty()) {
    error = "external data has no location";
    return failure();
  }
  // As ONNX's checker does (path traversal advisory GHSA-w4pg-jw8j-5c5w):
  // the file must lie inside the model's directory, after resolving links.
  if (llvm::sys::path::is_absolute(location) ||
      llvm::sys::path::is_absolute(location, llvm::sys::path::Style::windows)) {
    error = "external data location '" + location +
            "' must be relative to the model's directory";
    return failure();
  }
  for (StringRef part : llvm::make_range(
           llvm::sys::path::begin(location, llvm::sys::path::Style::posix),
           llvm::sys::path::end(location))) {
    if (part == ".." || part.contains('\\')) {
      error = "external data location '" + location +
              "' leaves the model's directory";
      return failure();
    }
  }
  SmallString<256> file(modelDir);
  llvm::sys::path::append(file, location);
  SmallString<256> realDir, realFile;
  if (std::error_code ec = llvm::sys::fs::real_path(file, realFile)) {
    error = "external data file '" + std::string(file) +
            "' cannot be opened: " + ec.message();
    return failure();
  }
  if (std::error_code ec = llvm::sys::fs::real_path(
          modelDir.empty() ? StringRef(".") : modelDir, realDir)) {
    error = "model directory '" + modelDir.str() +
            "' cannot be resolved: " + ec.message();
    return failure();
  }
  std::string inside = realDir.str().str();
  if (inside.back() != '/')
    inside += '/';
  if (!StringRef(realFile).starts_with(inside)) {
    error = "external data location '" + location + "' resolves to '" +
            std::string(realFile) + "', outside the model's directory";
    return failure();
  }
  if (!llvm::sys::fs::is_regular_file(realFile)) {
    error =
        "external data file '" + std::string(file) + "' is not a regular file";
    return failure();
  }
  uint64_t fileSize;
  if (std::error_code ec = llvm::sys::fs::file_size(realFile, fileSize)) {
    error = "external data file '" + std::string(file) +
            "' cannot be opened: " + ec.message();
    return failure();
  }
  uint64_t size = length ? *length : uint64_t(expectedBytes);
  if (offset > fileSize || size > fileSize - offset) {
    error = "external data file '" + std::string(file) + "' has " +
            std::to_string(fileSize) + " bytes; the tensor needs " +
            std::to_string(size) + " at offset " + std::to_string(offset);
    return failure();
  }
  auto buffer = llvm::MemoryBuffer::getFileSlice(realFile, size, offset);
  if (!buffer) {
    error = "external data file '" + std::string(file) +
            "' cannot be read: " + buffer.getError().message();
    return failure();
  }
  out.assign((*buffer)->getBufferStart(), (*buffer)->getBufferEnd());
  return success();
}

} // namespace

FailureOr<ConstTensor> qforge::importer::detail::readTensorProto(
    MLIRContext *ctx, const onnx::TensorProto &proto, StringRef modelDir,
    std::string &error) {
  Type elementType = getElementType(ctx, proto.data_type());
  if (!elementType) {
    error =
        "has unsupported element type " + getONNXTypeName(proto.data_type());
    return failure();
  }
  SmallVector<int64_t> shape;
  int64_t numElements = 1, expectedBytes = 0;
  int64_t width = getElementByteWidth(elementType);
  for (int64_t d : proto.dims()) {
    if (d < 0) {
      error = "has a negative dimension";
      return failure();
    }
    shape.push_back(d);
    if (llvm::MulOverflow(numElements, d, numElements)) {
      error = "declares more than 2^63 elements";
      return failure();
    }
  }
  if (llvm::MulOverflow(numElements, width, expectedBytes)) {
    error = "declares " + formatShape(shape) + ", more than 2^63 bytes";
    return failure();
  }
  auto type = RankedTensorType::get(shape, elementType);

  auto checkSize = [&](int64_t got) -> LogicalResult {
    if (got == expectedBytes)
      return success();
    error = "holds " + std::to_string(got) + " bytes, expected " +
            std::to_string(expectedBytes) + " for " + formatShape(shape) + " " +
            getONNXTypeName(proto.data_type());
    return failure();
  };

  if (proto.data_location() == onnx::TensorProto::EXTERNAL) {
    std::vector<char> data;
    if (failed(readExternalData(proto, modelDir, expectedBytes, data, error)) ||
        failed(checkSize(data.size())))
      return failure();
    return ConstTensor(type, std::move(data));
  }
  if (proto.has_raw_data()) {
    const std::string &raw = proto.raw_data();
    if (failed(checkSize(raw.size())))
      return failure();
    return ConstTensor(type, ArrayRef<char>(raw.data(), raw.size()));
  }
  std::vector<char> data;
  // The declared size is checked against what the typed fields hold after
  // reading them; reserve no more than those fields can expand to.
  data.reserve(std::min<uint64_t>(expectedBytes, 8 * proto.ByteSizeLong()));
  if (!readTypedData(proto, width, data)) {
    error =
        "has unsupported element type " + getONNXTypeName(proto.data_type());
    return failure();
  }
  if (failed(checkSize(data.size())))
    return failure();
  return ConstTensor(type, std::move(data));
}
