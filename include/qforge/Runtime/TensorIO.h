//===- TensorIO.h - Host tensors and tensor files ---------------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// `HostTensor` is the runtime's tensor in host memory: an element type, a
// static shape and a 64-byte aligned, row-major buffer. This header also
// reads and writes tensors as NumPy `.npy` files (format 1.0/2.0/3.0,
// little-endian, C order) and as ONNX `TensorProto` `.pb` files (decoded by a
// small protobuf wire-format reader; no protobuf library is needed).
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_RUNTIME_TENSORIO_H
#define QFORGE_RUNTIME_TENSORIO_H

#include "qforge/Runtime/QFM.h"

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace qforge {
namespace rt {

using qfm::DType;

/// Alignment of every buffer the runtime allocates.
constexpr size_t kBufferAlignment = 64;

/// An owned, zero-initialised, 64-byte aligned byte buffer.
class AlignedBuffer {
public:
  AlignedBuffer() = default;
  explicit AlignedBuffer(size_t size);
  AlignedBuffer(const AlignedBuffer &other);
  AlignedBuffer(AlignedBuffer &&other) noexcept;
  AlignedBuffer &operator=(const AlignedBuffer &other);
  AlignedBuffer &operator=(AlignedBuffer &&other) noexcept;
  ~AlignedBuffer();

  /// Never null, even for size 0, so it can be handed to compiled code.
  uint8_t *data() { return ptr ? ptr : placeholder(); }
  const uint8_t *data() const { return ptr ? ptr : placeholder(); }
  size_t size() const { return bytes; }
  size_t capacity() const { return reserved; }

  /// Makes the buffer `size` bytes long, keeping its memory when it has the
  /// capacity (the contents are then unspecified; new memory is zeroed).
  void resize(size_t size);
  /// Ensures a capacity of `size` bytes without changing size().
  void reserve(size_t size);

private:
  static uint8_t *placeholder();
  uint8_t *ptr = nullptr;
  size_t bytes = 0;
  size_t reserved = 0;
};

/// A tensor in host memory (row-major, contiguous).
struct HostTensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  AlignedBuffer buffer;

  HostTensor() = default;
  /// A zero-filled tensor. `shape` must be static.
  HostTensor(DType dtype, std::vector<int64_t> shape);

  int64_t numElements() const { return qfm::numElements(shape); }
  /// Gives the tensor this dtype and (static) shape, reusing its buffer when
  /// it is large enough; the contents are unspecified afterwards.
  void reshape(DType newType, std::vector<int64_t> newShape);
  size_t byteSize() const { return buffer.size(); }
  void *data() { return buffer.data(); }
  const void *data() const { return buffer.data(); }
  template <typename T> T *dataAs() { return reinterpret_cast<T *>(data()); }
  template <typename T> const T *dataAs() const {
    return reinterpret_cast<const T *>(data());
  }
  /// "f32 [1,4]".
  std::string typeString() const;
};

//===----------------------------------------------------------------------===//
// NumPy .npy
//===----------------------------------------------------------------------===//

/// Decodes an .npy image. `what` names the source in messages. bf16 is read
/// from the raw two-byte descriptors "<V2"/"|V2" (what ml_dtypes writes).
bool parseNpy(const uint8_t *data, size_t size, const std::string &what,
              HostTensor &out, std::string &err);
/// Encodes a tensor as .npy (version 1.0, or 2.0 for very long headers).
std::vector<uint8_t> encodeNpy(const HostTensor &tensor);

bool readNpy(const std::string &path, HostTensor &out, std::string &err);
bool writeNpy(const std::string &path, const HostTensor &tensor,
              std::string &err);

//===----------------------------------------------------------------------===//
// ONNX TensorProto .pb
//===----------------------------------------------------------------------===//

/// ONNX TensorProto.DataType codes for the types the runtime knows.
enum OnnxDataType : int32_t {
  OnnxFloat = 1,
  OnnxUInt8 = 2,
  OnnxInt8 = 3,
  OnnxInt16 = 5,
  OnnxInt32 = 6,
  OnnxInt64 = 7,
  OnnxBool = 9,
  OnnxFloat16 = 10,
  OnnxDouble = 11,
  OnnxBFloat16 = 16,
};

/// Decodes a serialized onnx.TensorProto; `name` receives its name field.
bool parseTensorProto(const uint8_t *data, size_t size, const std::string &what,
                      HostTensor &out, std::string &err,
                      std::string *name = nullptr);
/// Encodes a tensor as an onnx.TensorProto (dims, data_type, name, raw_data).
std::vector<uint8_t> encodeTensorProto(const HostTensor &tensor,
                                       const std::string &name = "");

bool readTensorProto(const std::string &path, HostTensor &out, std::string &err,
                     std::string *name = nullptr);
bool writeTensorProto(const std::string &path, const HostTensor &tensor,
                      std::string &err, const std::string &name = "");

//===----------------------------------------------------------------------===//
// By extension
//===----------------------------------------------------------------------===//

/// Reads a .npy or .pb file, chosen by the extension.
bool readTensorFile(const std::string &path, HostTensor &out, std::string &err);
/// Writes a .npy or .pb file, chosen by the extension, through a temporary
/// file that is renamed into place (no partial file on failure).
bool writeTensorFile(const std::string &path, const HostTensor &tensor,
                     std::string &err);
/// True if the extension of `path` is one writeTensorFile understands.
bool isTensorFileName(const std::string &path);

/// Reads a whole file. Messages name the path.
bool readFileBytes(const std::string &path, std::vector<uint8_t> &out,
                   std::string &err);
/// Writes `path + ".tmp.<pid>"` and renames it over `path`; removes the
/// temporary on failure.
bool writeFileAtomically(const std::string &path, const void *data, size_t size,
                         std::string &err);

} // namespace rt
} // namespace qforge

#endif // QFORGE_RUNTIME_TENSORIO_H
