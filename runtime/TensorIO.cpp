//===- TensorIO.cpp - Host tensors and tensor files -------------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//

#include "qforge/Runtime/TensorIO.h"
#include "qforge/Runtime/QFM.h"
#include "qforge/Support/OneLine.h"

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <new>
#include <sys/stat.h>
#include <unistd.h>

using namespace qforge;
using namespace qforge::rt;

//===----------------------------------------------------------------------===//
// AlignedBuffer and HostTensor
//===----------------------------------------------------------------------===//

AlignedBuffer::AlignedBuffer(size_t size) : bytes(size) {
  if (size == 0)
    return;
  size_t rounded =
      (size + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
  ptr = static_cast<uint8_t *>(std::aligned_alloc(kBufferAlignment, rounded));
  if (!ptr)
    throw std::bad_alloc();
  std::memset(ptr, 0, rounded);
  reserved = rounded;
}

void AlignedBuffer::resize(size_t size) {
  reserve(size);
  bytes = size;
}

void AlignedBuffer::reserve(size_t size) {
  if (size <= reserved)
    return;
  AlignedBuffer bigger(size);
  if (bytes)
    std::memcpy(bigger.ptr, ptr, bytes);
  bigger.bytes = bytes;
  *this = std::move(bigger);
}

AlignedBuffer::AlignedBuffer(const AlignedBuffer &other)
    : AlignedBuffer(other.bytes) {
  if (bytes)
    std::memcpy(ptr, other.ptr, bytes);
}

AlignedBuffer::AlignedBuffer(AlignedBuffer &&other) noexcept
    : ptr(other.ptr), bytes(other.bytes), reserved(other.reserved) {
  other.ptr = nullptr;
  other.bytes = 0;
  other.reserved = 0;
}

AlignedBuffer &AlignedBuffer::operator=(const AlignedBuffer &other) {
  if (this != &other)
    *this = AlignedBuffer(other);
  return *this;
}

AlignedBuffer &AlignedBuffer::operator=(AlignedBuffer &&other) noexcept {
  if (this != &other) {
    std::free(ptr);
    ptr = other.ptr;
    bytes = other.bytes;
    reserved = other.reserved;
    other.ptr = nullptr;
    other.bytes = 0;
    other.reserved = 0;
  }
  return *this;
}

AlignedBuffer::~AlignedBuffer() { std::free(ptr); }

uint8_t *AlignedBuffer::placeholder() {
  alignas(kBufferAlignment) static uint8_t storage[kBufferAlignment];
  return storage;
}

HostTensor::HostTensor(DType dtype, std::vector<int64_t> shape)
    : dtype(dtype), shape(std::move(shape)),
      buffer(static_cast<size_t>(qfm::numElements(this->shape)) *
             qfm::dtypeSize(dtype)) {}

void HostTensor::reshape(DType newType, std::vector<int64_t> newShape) {
  dtype = newType;
  shape = std::move(newShape);
  buffer.resize(static_cast<size_t>(qfm::numElements(shape)) *
                qfm::dtypeSize(dtype));
}

std::string HostTensor::typeString() const {
  return std::string(qfm::dtypeName(dtype)) + " " + qfm::formatShape(shape);
}

//===----------------------------------------------------------------------===//
// Files
//===----------------------------------------------------------------------===//

bool rt::readFileBytes(const std::string &path, std::vector<uint8_t> &out,
                       std::string &err) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    err = path + ": cannot open: " + std::strerror(errno);
    return false;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    err = path + ": not a regular file";
    ::close(fd);
    return false;
  }
  out.resize(static_cast<size_t>(st.st_size));
  size_t done = 0;
  while (done < out.size()) {
    ssize_t n = ::read(fd, out.data() + done, out.size() - done);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0) {
      err = path + ": read failed: " +
            (n < 0 ? std::strerror(errno) : "unexpected end of file");
      ::close(fd);
      return false;
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return true;
}

bool rt::writeFileAtomically(const std::string &path, const void *data,
                             size_t size, std::string &err) {
  return qfm::writeFileAtomically(
      path, [&](const qfm::ChunkWriter &write) { return write(data, size); },
      err);
}

static bool endsWith(const std::string &s, const char *suffix) {
  size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

//===----------------------------------------------------------------------===//
// NumPy .npy
//===----------------------------------------------------------------------===//

namespace {
constexpr char kNpyMagic[6] = {'\x93', 'N', 'U', 'M', 'P', 'Y'};

struct NpyType {
  const char *descr;
  DType type;
};
// The first spelling of each type is the one written.
constexpr NpyType kNpyTypes[] = {
    {"<f4", DType::F32},  {"<f2", DType::F16}, {"<V2", DType::BF16},
    {"|V2", DType::BF16}, {"<f8", DType::F64}, {"|i1", DType::I8},
    {"<i1", DType::I8},   {"|u1", DType::U8},  {"<u1", DType::U8},
    {"<i2", DType::I16},  {"<i4", DType::I32}, {"<i8", DType::I64},
    {"|b1", DType::I1},   {"<b1", DType::I1},
};

/// Parser of the Python dict literal in an .npy header.
class NpyHeaderParser {
public:
  NpyHeaderParser(const std::string &text, size_t baseOffset)
      : text(text), base(baseOffset) {}

  std::string descr;
  bool fortranOrder = false;
  bool haveDescr = false, haveOrder = false, haveShape = false;
  std::vector<int64_t> shape;
  std::string err;

  bool parse() {
    skipSpace();
    if (!expect('{'))
      return false;
    skipSpace();
    while (peek() != '}') {
      std::string key;
      if (!parseString(key))
        return false;
      skipSpace();
      if (!expect(':'))
        return false;
      skipSpace();
      if (key == "descr") {
        if (peek() == '[')
          return fail("structured dtypes are not supported");
        if (!parseString(descr))
          return false;
        haveDescr = true;
      } else if (key == "fortran_order") {
        if (!parseBool(fortranOrder))
          return false;
        haveOrder = true;
      } else if (key == "shape") {
        if (!parseTuple())
          return false;
        haveShape = true;
      } else {
        return fail("unexpected key '" + key + "'");
      }
      skipSpace();
      if (peek() == ',') {
        ++pos;
        skipSpace();
        continue;
      }
      if (peek() != '}')
        return fail("expected ',' or '}'");
    }
    if (!haveDescr || !haveOrder || !haveShape)
      return fail(std::string("missing key '") +
                  (!haveDescr   ? "descr"
                   : !haveOrder ? "fortran_order"
                                : "shape") +
                  "'");
    return true;
  }

  size_t offset() const { return base + pos; }

private:
  const std::string &text;
  size_t base;
  size_t pos = 0;

  char peek() const { return pos < text.size() ? text[pos] : '\0'; }
  void skipSpace() {
    while (pos < text.size() && (text[pos] == ' ' || text[pos] == '\t' ||
                                 text[pos] == '\n' || text[pos] == '\r'))
      ++pos;
  }
  bool fail(const std::string &message) {
    if (err.empty())
      err = "bad header at byte offset " + std::to_string(offset()) + ": " +
            message;
    return false;
  }
  bool expect(char c) {
    if (peek() != c)
      return fail(std::string("expected '") + c + "'");
    ++pos;
    return true;
  }
  bool parseString(std::string &out) {
    char quote = peek();
    if (quote != '\'' && quote != '"')
      return fail("expected a string");
    ++pos;
    size_t start = pos;
    while (pos < text.size() && text[pos] != quote)
      ++pos;
    if (pos >= text.size())
      return fail("unterminated string");
    out = text.substr(start, pos - start);
    ++pos;
    return true;
  }
  bool parseBool(bool &out) {
    if (text.compare(pos, 4, "True") == 0) {
      out = true;
      pos += 4;
      return true;
    }
    if (text.compare(pos, 5, "False") == 0) {
      out = false;
      pos += 5;
      return true;
    }
    return fail("expected True or False");
  }
  bool parseTuple() {
    if (!expect('('))
      return false;
    shape.clear();
    skipSpace();
    while (peek() != ')') {
      if (peek() < '0' || peek() > '9')
        return fail("expected a dimension");
      int64_t value = 0;
      while (peek() >= '0' && peek() <= '9') {
        if (value > (std::numeric_limits<int64_t>::max() - 9) / 10)
          return fail("dimension too large");
        value = value * 10 + (peek() - '0');
        ++pos;
      }
      // Python 2 era files may write "3L".
      if (peek() == 'L')
        ++pos;
      shape.push_back(value);
      skipSpace();
      if (peek() == ',') {
        ++pos;
        skipSpace();
      } else if (peek() != ')') {
        return fail("expected ',' or ')'");
      }
    }
    ++pos;
    return true;
  }
};

} // namespace

namespace {
bool decodeNpy(const uint8_t *data, size_t size, const std::string &what,
               HostTensor &out, std::string &err) {
  if (size < 10 || std::memcmp(data, kNpyMagic, sizeof(kNpyMagic)) != 0) {
    err = what + ": not a NumPy .npy file (bad magic at byte offset 0)";
    return false;
  }
  uint8_t major = data[6];
  size_t headerStart, headerLen;
  if (major == 1) {
    headerStart = 10;
    headerLen = uint16_t(data[8] | (data[9] << 8));
  } else if (major == 2 || major == 3) {
    if (size < 12) {
      err = what + ": truncated header (byte offset " + std::to_string(size) +
            ")";
      return false;
    }
    headerStart = 12;
    headerLen = uint32_t(data[8]) | (uint32_t(data[9]) << 8) |
                (uint32_t(data[10]) << 16) | (uint32_t(data[11]) << 24);
  } else {
    err = what + ": unsupported .npy format version " + std::to_string(major) +
          "." + std::to_string(data[7]) + " (byte offset 6)";
    return false;
  }
  if (headerLen > size - headerStart) {
    err = what + ": truncated: header needs " + std::to_string(headerLen) +
          " bytes from byte offset " + std::to_string(headerStart) +
          ", file has " + std::to_string(size) + " bytes";
    return false;
  }
  std::string header(reinterpret_cast<const char *>(data + headerStart),
                     headerLen);
  NpyHeaderParser parser(header, headerStart);
  if (!parser.parse()) {
    err = what + ": " + parser.err;
    return false;
  }
  if (parser.fortranOrder) {
    err = what + ": Fortran-ordered arrays are not supported (save a C-ordered "
                 "array, e.g. with numpy.ascontiguousarray)";
    return false;
  }
  const std::string &descr = parser.descr;
  const NpyType *type = nullptr;
  for (const NpyType &t : kNpyTypes)
    if (descr == t.descr)
      type = &t;
  if (!type && descr.size() >= 2 && descr[0] == '=') {
    std::string little = "<" + descr.substr(1);
    for (const NpyType &t : kNpyTypes)
      if (little == t.descr)
        type = &t;
  }
  if (!type && descr.size() >= 2 && descr[0] == '>') {
    std::string single = "|" + descr.substr(1);
    for (const NpyType &t : kNpyTypes)
      if (single == t.descr)
        type = &t;
    if (!type) {
      err = what + ": big-endian data ('" + descr + "') is not supported";
      return false;
    }
  }
  if (!type) {
    err = what + ": unsupported dtype '" + descr +
          "' (supported: f32, f16, bf16, f64, i8, u8, i16, i32, i64, bool)";
    return false;
  }
  uint64_t bytes = 0;
  if (!qfm::checkedByteSize(parser.shape, type->type, bytes)) {
    err = what + ": shape " + qfm::formatShape(parser.shape) + " is too large";
    return false;
  }
  size_t dataStart = headerStart + headerLen;
  size_t available = size - dataStart;
  if (bytes > available) {
    err = what + ": truncated: " + std::string(qfm::dtypeName(type->type)) +
          " " + qfm::formatShape(parser.shape) + " needs " +
          std::to_string(bytes) + " bytes from byte offset " +
          std::to_string(dataStart) + ", file has " + std::to_string(size) +
          " bytes";
    return false;
  }
  if (bytes < available) {
    err = what + ": " + std::to_string(available - bytes) +
          " unexpected bytes after the data (byte offset " +
          std::to_string(dataStart + bytes) + ")";
    return false;
  }
  HostTensor t(type->type, parser.shape);
  if (bytes)
    std::memcpy(t.data(), data + dataStart, bytes);
  out = std::move(t);
  return true;
}
} // namespace

bool rt::parseNpy(const uint8_t *data, size_t size, const std::string &what,
                  HostTensor &out, std::string &err) {
  if (decodeNpy(data, size, what, out, err))
    return true;
  err = oneLine(err);
  return false;
}

std::vector<uint8_t> rt::encodeNpy(const HostTensor &tensor) {
  const char *descr = "<f4";
  for (const NpyType &t : kNpyTypes) {
    if (t.type == tensor.dtype) {
      descr = t.descr;
      break;
    }
  }
  std::string shape = "(";
  for (size_t i = 0; i < tensor.shape.size(); ++i) {
    shape += std::to_string(tensor.shape[i]);
    if (i + 1 < tensor.shape.size() || tensor.shape.size() == 1)
      shape += ",";
    if (i + 1 < tensor.shape.size())
      shape += " ";
  }
  shape += ")";
  std::string header = std::string("{'descr': '") + descr +
                       "', 'fortran_order': False, 'shape': " + shape + ", }";
  // Pad with spaces and a newline so that the data start is 64-byte aligned.
  size_t prefix = 10;
  if ((prefix + header.size() + 1 + 63) / 64 * 64 - prefix > 0xffff)
    prefix = 12;
  size_t total = (prefix + header.size() + 1 + 63) / 64 * 64;
  header.append(total - prefix - header.size() - 1, ' ');
  header += '\n';

  std::vector<uint8_t> out(total + tensor.byteSize());
  std::memcpy(out.data(), kNpyMagic, sizeof(kNpyMagic));
  out[6] = prefix == 10 ? 1 : 2;
  out[7] = 0;
  size_t len = header.size();
  out[8] = uint8_t(len);
  out[9] = uint8_t(len >> 8);
  if (prefix == 12) {
    out[10] = uint8_t(len >> 16);
    out[11] = uint8_t(len >> 24);
  }
  std::memcpy(out.data() + prefix, header.data(), header.size());
  if (tensor.byteSize())
    std::memcpy(out.data() + total, tensor.data(), tensor.byteSize());
  return out;
}

bool rt::readNpy(const std::string &path, HostTensor &out, std::string &err) {
  std::vector<uint8_t> bytes;
  if (!readFileBytes(path, bytes, err))
    return false;
  return parseNpy(bytes.data(), bytes.size(), path, out, err);
}

bool rt::writeNpy(const std::string &path, const HostTensor &tensor,
                  std::string &err) {
  std::vector<uint8_t> bytes = encodeNpy(tensor);
  return writeFileAtomically(path, bytes.data(), bytes.size(), err);
}

//===----------------------------------------------------------------------===//
// ONNX TensorProto .pb
//===----------------------------------------------------------------------===//

namespace {
enum WireType { Varint = 0, Fixed64 = 1, LengthDelimited = 2, Fixed32 = 5 };

/// A bounds-checked reader of the protobuf wire format.
class WireReader {
public:
  WireReader(const uint8_t *data, size_t size, const std::string &what)
      : data(data), size(size), what(what) {}

  size_t pos = 0;
  std::string err;

  bool atEnd() const { return pos >= size; }
  size_t end() const { return size; }

  bool fail(size_t at, const std::string &message) {
    if (err.empty())
      err = what + ": " + message + " (byte offset " + std::to_string(at) + ")";
    return false;
  }

  bool varint(uint64_t &value, size_t limit) {
    size_t start = pos;
    value = 0;
    for (unsigned shift = 0; shift < 64; shift += 7) {
      if (pos >= limit)
        return fail(start, "truncated varint");
      uint8_t byte = data[pos++];
      value |= uint64_t(byte & 0x7f) << shift;
      if (!(byte & 0x80))
        return true;
    }
    return fail(start, "varint longer than 10 bytes");
  }

  bool fixed(void *out, size_t bytes, size_t limit) {
    if (limit - pos < bytes)
      return fail(pos, "truncated " + std::to_string(bytes * 8) + "-bit value");
    std::memcpy(out, data + pos, bytes);
    pos += bytes;
    return true;
  }

  /// Reads a length prefix; `begin`/`end` delimit the payload.
  bool lengthDelimited(size_t &begin, size_t &end, uint32_t field) {
    size_t start = pos;
    uint64_t length = 0;
    if (!varint(length, size))
      return false;
    if (length > size - pos)
      return fail(start, "field " + std::to_string(field) + " (length " +
                             std::to_string(length) +
                             ") runs past the end of the data (" +
                             std::to_string(size) + " bytes)");
    begin = pos;
    end = pos + length;
    pos = end;
    return true;
  }

  const uint8_t *bytesAt(size_t at) const { return data + at; }

private:
  const uint8_t *data;
  size_t size;
  const std::string &what;
};

struct TensorFields {
  std::vector<int64_t> dims;
  int64_t dataType = 0;
  bool haveRaw = false;
  size_t rawBegin = 0, rawEnd = 0;
  std::vector<float> floats;
  std::vector<int64_t> int32s; // int32_data, kept wide
  std::vector<int64_t> int64s;
  std::vector<double> doubles;
  std::vector<uint64_t> uint64s;
  bool external = false;
  std::string name;
};

/// Reads a repeated scalar field, packed (wire type 2) or not.
template <typename T, typename Convert>
bool readRepeated(WireReader &r, size_t tagAt, uint32_t wire, uint32_t field,
                  WireType element, std::vector<T> &out, Convert convert) {
  auto one = [&](size_t limit) -> bool {
    if (element == Varint) {
      uint64_t v;
      if (!r.varint(v, limit))
        return false;
      out.push_back(convert(v));
      return true;
    }
    if (element == Fixed32) {
      uint32_t v;
      if (!r.fixed(&v, 4, limit))
        return false;
      out.push_back(convert(v));
      return true;
    }
    uint64_t v;
    if (!r.fixed(&v, 8, limit))
      return false;
    out.push_back(convert(v));
    return true;
  };
  if (wire == LengthDelimited) {
    size_t begin, end;
    if (!r.lengthDelimited(begin, end, field))
      return false;
    r.pos = begin;
    while (r.pos < end)
      if (!one(end))
        return false;
    return true;
  }
  if (wire != static_cast<uint32_t>(element))
    return r.fail(tagAt, "field " + std::to_string(field) + " has wire type " +
                             std::to_string(wire));
  return one(r.end());
}

const char *onnxTypeName(int64_t code) {
  static const char *names[] = {
      "UNDEFINED",      "FLOAT",      "UINT8",
      "INT8",           "UINT16",     "INT16",
      "INT32",          "INT64",      "STRING",
      "BOOL",           "FLOAT16",    "DOUBLE",
      "UINT32",         "UINT64",     "COMPLEX64",
      "COMPLEX128",     "BFLOAT16",   "FLOAT8E4M3FN",
      "FLOAT8E4M3FNUZ", "FLOAT8E5M2", "FLOAT8E5M2FNUZ",
      "UINT4",          "INT4"};
  if (code >= 0 && code < int64_t(sizeof(names) / sizeof(names[0])))
    return names[code];
  return "unknown";
}

bool dtypeFromOnnx(int64_t code, DType &type) {
  switch (code) {
  case OnnxFloat:
    type = DType::F32;
    return true;
  case OnnxUInt8:
    type = DType::U8;
    return true;
  case OnnxInt8:
    type = DType::I8;
    return true;
  case OnnxInt16:
    type = DType::I16;
    return true;
  case OnnxInt32:
    type = DType::I32;
    return true;
  case OnnxInt64:
    type = DType::I64;
    return true;
  case OnnxBool:
    type = DType::I1;
    return true;
  case OnnxFloat16:
    type = DType::F16;
    return true;
  case OnnxDouble:
    type = DType::F64;
    return true;
  case OnnxBFloat16:
    type = DType::BF16;
    return true;
  default:
    return false;
  }
}

int32_t onnxFromDType(DType type) {
  switch (type) {
  case DType::F32:
    return OnnxFloat;
  case DType::F16:
    return OnnxFloat16;
  case DType::BF16:
    return OnnxBFloat16;
  case DType::F64:
    return OnnxDouble;
  case DType::I8:
    return OnnxInt8;
  case DType::U8:
    return OnnxUInt8;
  case DType::I16:
    return OnnxInt16;
  case DType::I32:
    return OnnxInt32;
  case DType::I64:
    return OnnxInt64;
  case DType::I1:
    return OnnxBool;
  }
  return 0;
}
} // namespace

namespace {
bool decodeTensorProto(const uint8_t *data, size_t size,
                       const std::string &what, HostTensor &out,
                       std::string &err, std::string *name) {
  WireReader r(data, size, what);
  TensorFields f;
  auto asInt64 = [](uint64_t v) { return static_cast<int64_t>(v); };
  auto asInt32 = [](uint64_t v) {
    return static_cast<int64_t>(static_cast<int32_t>(v));
  };
  while (!r.atEnd()) {
    size_t tagAt = r.pos;
    uint64_t tag;
    if (!r.varint(tag, size)) {
      err = r.err;
      return false;
    }
    uint32_t field = static_cast<uint32_t>(tag >> 3);
    uint32_t wire = static_cast<uint32_t>(tag & 7);
    if (field == 0) {
      err = what + ": invalid field number 0 (byte offset " +
            std::to_string(tagAt) + ")";
      return false;
    }
    bool ok = true;
    switch (field) {
    case 1: // dims
      ok = readRepeated(r, tagAt, wire, field, Varint, f.dims, asInt64);
      break;
    case 2: { // data_type
      std::vector<int64_t> v;
      ok = readRepeated(r, tagAt, wire, field, Varint, v, asInt32);
      if (ok && !v.empty())
        f.dataType = v.back();
      break;
    }
    case 4: // float_data
      ok = readRepeated(r, tagAt, wire, field, Fixed32, f.floats,
                        [](uint32_t v) {
                          float x;
                          std::memcpy(&x, &v, 4);
                          return x;
                        });
      break;
    case 5: // int32_data
      ok = readRepeated(r, tagAt, wire, field, Varint, f.int32s, asInt32);
      break;
    case 7: // int64_data
      ok = readRepeated(r, tagAt, wire, field, Varint, f.int64s, asInt64);
      break;
    case 10: // double_data
      ok = readRepeated(r, tagAt, wire, field, Fixed64, f.doubles,
                        [](uint64_t v) {
                          double x;
                          std::memcpy(&x, &v, 8);
                          return x;
                        });
      break;
    case 11: // uint64_data
      ok = readRepeated(r, tagAt, wire, field, Varint, f.uint64s,
                        [](uint64_t v) { return v; });
      break;
    case 8:   // name
    case 9: { // raw_data
      if (wire != LengthDelimited) {
        ok = r.fail(tagAt, "field " + std::to_string(field) +
                               " has wire type " + std::to_string(wire));
        break;
      }
      size_t begin, end;
      ok = r.lengthDelimited(begin, end, field);
      if (!ok)
        break;
      if (field == 8) {
        f.name.assign(reinterpret_cast<const char *>(r.bytesAt(begin)),
                      end - begin);
      } else {
        f.haveRaw = true;
        f.rawBegin = begin;
        f.rawEnd = end;
      }
      break;
    }
    case 13: // external_data
      f.external = true;
      [[fallthrough]];
    default: { // skip the field
      uint64_t ignored;
      size_t begin, end;
      if (wire == Varint)
        ok = r.varint(ignored, size);
      else if (wire == Fixed64)
        ok = r.fixed(&ignored, 8, size);
      else if (wire == Fixed32)
        ok = r.fixed(&ignored, 4, size);
      else if (wire == LengthDelimited)
        ok = r.lengthDelimited(begin, end, field);
      else
        ok = r.fail(tagAt, "unsupported wire type " + std::to_string(wire) +
                               " for field " + std::to_string(field));
      if (ok && field == 14 && wire == Varint && ignored == 1)
        f.external = true; // data_location = EXTERNAL
      break;
    }
    }
    if (!ok) {
      err = r.err;
      return false;
    }
  }

  if (f.external) {
    err = what + ": tensors with external data are not supported";
    return false;
  }
  DType type;
  if (!dtypeFromOnnx(f.dataType, type)) {
    err = what + ": unsupported data_type " + std::to_string(f.dataType) +
          " (" + onnxTypeName(f.dataType) + ")";
    return false;
  }
  for (int64_t d : f.dims) {
    if (d < 0) {
      err = what + ": negative dimension in dims " + qfm::formatShape(f.dims);
      return false;
    }
  }
  uint64_t bytes = 0;
  if (!qfm::checkedByteSize(f.dims, type, bytes) ||
      bytes > size * 64 + (1 << 20)) {
    err = what + ": dims " + qfm::formatShape(f.dims) + " are too large";
    return false;
  }
  HostTensor t(type, f.dims);
  size_t count = static_cast<size_t>(t.numElements());
  if (f.haveRaw) {
    if (f.rawEnd - f.rawBegin != bytes) {
      err = what + ": raw_data holds " + std::to_string(f.rawEnd - f.rawBegin) +
            " bytes, but " + t.typeString() + " needs " +
            std::to_string(bytes) + " (byte offset " +
            std::to_string(f.rawBegin) + ")";
      return false;
    }
    if (bytes)
      std::memcpy(t.data(), r.bytesAt(f.rawBegin), bytes);
  } else {
    const char *fieldName = "int32_data";
    size_t have = f.int32s.size();
    switch (type) {
    case DType::F32:
      fieldName = "float_data";
      have = f.floats.size();
      break;
    case DType::F64:
      fieldName = "double_data";
      have = f.doubles.size();
      break;
    case DType::I64:
      fieldName = "int64_data";
      have = f.int64s.size();
      break;
    default:
      break;
    }
    if (have != count) {
      err = what + ": " + fieldName + " holds " + std::to_string(have) +
            " values, but " + t.typeString() + " needs " +
            std::to_string(count);
      return false;
    }
    for (size_t i = 0; i < count; ++i) {
      switch (type) {
      case DType::F32:
        t.dataAs<float>()[i] = f.floats[i];
        break;
      case DType::F64:
        t.dataAs<double>()[i] = f.doubles[i];
        break;
      case DType::I64:
        t.dataAs<int64_t>()[i] = f.int64s[i];
        break;
      case DType::I32:
        t.dataAs<int32_t>()[i] = static_cast<int32_t>(f.int32s[i]);
        break;
      case DType::I16:
        t.dataAs<int16_t>()[i] = static_cast<int16_t>(f.int32s[i]);
        break;
      case DType::F16:
      case DType::BF16:
        t.dataAs<uint16_t>()[i] = static_cast<uint16_t>(f.int32s[i]);
        break;
      case DType::I8:
        t.dataAs<int8_t>()[i] = static_cast<int8_t>(f.int32s[i]);
        break;
      case DType::U8:
        t.dataAs<uint8_t>()[i] = static_cast<uint8_t>(f.int32s[i]);
        break;
      case DType::I1:
        t.dataAs<uint8_t>()[i] = f.int32s[i] != 0;
        break;
      }
    }
  }
  if (name)
    *name = f.name;
  out = std::move(t);
  return true;
}
} // namespace

bool rt::parseTensorProto(const uint8_t *data, size_t size,
                          const std::string &what, HostTensor &out,
                          std::string &err, std::string *name) {
  if (decodeTensorProto(data, size, what, out, err, name))
    return true;
  err = oneLine(err);
  return false;
}

namespace {
void putVarint(std::vector<uint8_t> &out, uint64_t v) {
  while (v >= 0x80) {
    out.push_back(uint8_t(v | 0x80));
    v >>= 7;
  }
  out.push_back(uint8_t(v));
}
} // namespace

std::vector<uint8_t> rt::encodeTensorProto(const HostTensor &tensor,
                                           const std::string &name) {
  std::vector<uint8_t> out;
  for (int64_t d : tensor.shape) {
    putVarint(out, (1 << 3) | Varint);
    putVarint(out, static_cast<uint64_t>(d));
  }
  putVarint(out, (2 << 3) | Varint);
  putVarint(out, static_cast<uint64_t>(onnxFromDType(tensor.dtype)));
  if (!name.empty()) {
    putVarint(out, (8 << 3) | LengthDelimited);
    putVarint(out, name.size());
    out.insert(out.end(), name.begin(), name.end());
  }
  putVarint(out, (9 << 3) | LengthDelimited);
  putVarint(out, tensor.byteSize());
  const auto *p = static_cast<const uint8_t *>(tensor.data());
  out.insert(out.end(), p, p + tensor.byteSize());
  return out;
}

bool rt::readTensorProto(const std::string &path, HostTensor &out,
                         std::string &err, std::string *name) {
  std::vector<uint8_t> bytes;
  if (!readFileBytes(path, bytes, err))
    return false;
  return parseTensorProto(bytes.data(), bytes.size(), path, out, err, name);
}

bool rt::writeTensorProto(const std::string &path, const HostTensor &tensor,
                          std::string &err, const std::string &name) {
  std::vector<uint8_t> bytes = encodeTensorProto(tensor, name);
  return writeFileAtomically(path, bytes.data(), bytes.size(), err);
}

//===----------------------------------------------------------------------===//
// By extension
//===----------------------------------------------------------------------===//

bool rt::isTensorFileName(const std::string &path) {
  return endsWith(path, ".npy") || endsWith(path, ".pb");
}

bool rt::readTensorFile(const std::string &path, HostTensor &out,
                        std::string &err) {
  if (endsWith(path, ".npy"))
    return readNpy(path, out, err);
  if (endsWith(path, ".pb"))
    return readTensorProto(path, out, err);
  err = path + ": unknown tensor file type (expected a .npy or .pb file)";
  return false;
}

bool rt::writeTensorFile(const std::string &path, const HostTensor &tensor,
                         std::string &err) {
  if (endsWith(path, ".npy"))
    return writeNpy(path, tensor, err);
  if (endsWith(path, ".pb"))
    return writeTensorProto(path, tensor, err);
  err = path + ": unknown tensor file type (expected a .npy or .pb file)";
  return false;
}
