//===- QFM.cpp - The .qfm module file format --------------------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// Reader and writer of .qfm files. The layout (little-endian):
//
//   0   char magic[8] "QFMODULE"      24  u64 file_size
//   8   u32 version = 1               32  u64 table_hash (FNV-1a 64)
//   12  u32 section_count             40  zero up to byte 64
//   16  u64 table_offset
//
// The table holds section_count 64-byte entries: char name[40], u64 offset,
// u64 size, u64 hash. Section data start at 64-byte aligned offsets.
//
//===----------------------------------------------------------------------===//

#include "qforge/Runtime/QFM.h"
#include "qforge/Support/OneLine.h"

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <limits>
#include <set>
#include <sys/mman.h>
#include <sys/stat.h>
#include <thread>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "qforge modules are little-endian; this host is not supported"
#endif

using namespace qforge;
using namespace qforge::qfm;
using nlohmann::json;

//===----------------------------------------------------------------------===//
// Small helpers
//===----------------------------------------------------------------------===//

uint64_t qfm::fnv1a64(const void *data, size_t size, uint64_t hash) {
  const auto *bytes = static_cast<const uint8_t *>(data);
  for (size_t i = 0; i < size; ++i) {
    hash ^= bytes[i];
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

namespace {
struct DTypeEntry {
  DType type;
  const char *name;
  size_t size;
};
constexpr DTypeEntry kDTypes[] = {
    {DType::F32, "f32", 4}, {DType::F16, "f16", 2}, {DType::BF16, "bf16", 2},
    {DType::F64, "f64", 8}, {DType::I8, "i8", 1},   {DType::U8, "u8", 1},
    {DType::I16, "i16", 2}, {DType::I32, "i32", 4}, {DType::I64, "i64", 8},
    {DType::I1, "i1", 1},
};

template <typename T> T readLE(const uint8_t *p) {
  T value;
  std::memcpy(&value, p, sizeof(T));
  return value;
}

template <typename T> void writeLE(uint8_t *p, T value) {
  std::memcpy(p, &value, sizeof(T));
}

uint64_t alignUp(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

std::string describeSection(const std::string &name, uint64_t offset,
                            uint64_t size) {
  return "section '" + name + "' (byte offset " + std::to_string(offset) +
         ", " + std::to_string(size) + " bytes)";
}
} // namespace

const char *qfm::dtypeName(DType type) {
  for (const DTypeEntry &e : kDTypes)
    if (e.type == type)
      return e.name;
  return "?";
}

bool qfm::parseDType(std::string_view name, DType &type) {
  for (const DTypeEntry &e : kDTypes) {
    if (name == e.name) {
      type = e.type;
      return true;
    }
  }
  return false;
}

size_t qfm::dtypeSize(DType type) {
  for (const DTypeEntry &e : kDTypes)
    if (e.type == type)
      return e.size;
  return 0;
}

int64_t qfm::numElements(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape)
    if (d <= 0)
      return 0;
  for (int64_t d : shape)
    if (__builtin_mul_overflow(n, d, &n))
      return std::numeric_limits<int64_t>::max();
  return n;
}

bool qfm::checkedByteSize(const std::vector<int64_t> &shape, DType type,
                          uint64_t &bytes) {
  int64_t count = 1, total;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(count, d, &count))
      return false;
  if (__builtin_mul_overflow(count, int64_t(dtypeSize(type)), &total))
    return false;
  bytes = uint64_t(total);
  return true;
}

bool qfm::isDynamic(const std::vector<int64_t> &shape) {
  return std::any_of(shape.begin(), shape.end(),
                     [](int64_t d) { return d < 0; });
}

std::string qfm::formatShape(const std::vector<int64_t> &shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i)
      s += ",";
    s += shape[i] < 0 ? std::string("?") : std::to_string(shape[i]);
  }
  return s + "]";
}

const char *qfm::argRoleName(ArgRole role) {
  switch (role) {
  case ArgRole::Weight:
    return "weight";
  case ArgRole::Input:
    return "input";
  case ArgRole::Output:
    return "output";
  }
  return "?";
}

std::string TargetInfo::label() const {
  if (kind == "cpu")
    return cpu.empty() ? kind : kind + ":" + cpu;
  if (kind == "cuda")
    return arch.empty() ? kind : kind + ":" + arch;
  return kind;
}

//===----------------------------------------------------------------------===//
// Manifest
//===----------------------------------------------------------------------===//

namespace {
/// Schema checks with messages of the form "<path>: <problem>".
class SchemaReader {
public:
  std::string err;

  bool fail(const std::string &path, const std::string &problem) {
    if (err.empty())
      err = path + ": " + problem;
    return false;
  }

  const json *member(const json &object, const std::string &path,
                     const char *key, bool required) {
    auto it = object.find(key);
    if (it == object.end()) {
      if (required)
        fail(path.empty() ? std::string("manifest") : path,
             std::string("missing key '") + key + "'");
      return nullptr;
    }
    return &*it;
  }

  static std::string join(const std::string &path, const char *key) {
    return path.empty() ? std::string(key) : path + "." + key;
  }

  bool getString(const json &object, const std::string &path, const char *key,
                 bool required, std::string &out) {
    const json *value = member(object, path, key, required);
    if (!value)
      return !required;
    if (!value->is_string())
      return fail(join(path, key), "expected a string");
    out = value->get<std::string>();
    return true;
  }

  bool getObject(const json &object, const std::string &path, const char *key,
                 bool required, const json *&out) {
    out = member(object, path, key, required);
    if (!out)
      return !required;
    if (!out->is_object())
      return fail(join(path, key), "expected an object");
    return true;
  }

  bool getArray(const json &object, const std::string &path, const char *key,
                bool required, const json *&out) {
    out = member(object, path, key, required);
    if (!out)
      return !required;
    if (!out->is_array())
      return fail(join(path, key), "expected an array");
    return true;
  }
};

bool parseArg(SchemaReader &r, const json &value, const std::string &path,
              ArgInfo &arg) {
  if (!value.is_object())
    return r.fail(path, "expected an object");
  std::string role, dtype;
  if (!r.getString(value, path, "role", true, role) ||
      !r.getString(value, path, "name", true, arg.name) ||
      !r.getString(value, path, "dtype", true, dtype))
    return false;
  if (role == "weight")
    arg.role = ArgRole::Weight;
  else if (role == "input")
    arg.role = ArgRole::Input;
  else if (role == "output")
    arg.role = ArgRole::Output;
  else
    return r.fail(path + ".role", "unknown role '" + role +
                                      "' (expected weight, input or output)");
  if (arg.name.empty())
    return r.fail(path + ".name", "empty name");
  if (!parseDType(dtype, arg.dtype)) {
    std::string known;
    for (const DTypeEntry &e : kDTypes)
      known += std::string(known.empty() ? "" : ", ") + e.name;
    return r.fail(path + ".dtype", "unknown dtype '" + dtype +
                                       "' (expected one of " + known + ")");
  }
  const json *shape = nullptr;
  if (!r.getArray(value, path, "shape", true, shape))
    return false;
  arg.shape.clear();
  for (size_t i = 0; i < shape->size(); ++i) {
    const json &dim = (*shape)[i];
    if (!dim.is_number_integer() || dim.get<int64_t>() < -1)
      return r.fail(path + ".shape[" + std::to_string(i) + "]",
                    "expected an integer >= -1");
    arg.shape.push_back(dim.get<int64_t>());
  }
  std::vector<int64_t> largest = arg.shape; // dynamic dimensions as 1
  for (int64_t &d : largest)
    d = d < 0 ? 1 : d;
  uint64_t bytes;
  if (!checkedByteSize(largest, arg.dtype, bytes))
    return r.fail(path + ".shape", "too large: " + formatShape(arg.shape) +
                                       " exceeds 2^63 - 1 bytes");
  if (!r.getString(value, path, "section", arg.role == ArgRole::Weight,
                   arg.section))
    return false;
  return true;
}

bool parseTarget(SchemaReader &r, const json &value, const std::string &path,
                 TargetInfo &target) {
  if (!value.is_object())
    return r.fail(path, "expected an object");
  if (!r.getString(value, path, "kind", true, target.kind) ||
      !r.getString(value, path, "library", true, target.library) ||
      !r.getString(value, path, "symbol", true, target.symbol) ||
      !r.getString(value, path, "cpu", false, target.cpu) ||
      !r.getString(value, path, "arch", target.kind == "cuda", target.arch) ||
      !r.getString(value, path, "ptx", false, target.ptx) ||
      !r.getString(value, path, "buffers", false, target.buffers))
    return false;
  if (target.symbol.empty())
    return r.fail(path + ".symbol", "empty symbol name");
  const json *features = nullptr;
  if (!r.getArray(value, path, "features", false, features))
    return false;
  if (features) {
    for (size_t i = 0; i < features->size(); ++i) {
      const json &f = (*features)[i];
      if (!f.is_string())
        return r.fail(path + ".features[" + std::to_string(i) + "]",
                      "expected a string");
      target.features.push_back(f.get<std::string>());
    }
  }
  return true;
}
} // namespace

bool Manifest::fromJson(const json &value, Manifest &out, std::string &err) {
  SchemaReader r;
  Manifest m;
  auto finish = [&](bool ok) {
    if (!ok) {
      err = r.err.empty() ? std::string("invalid manifest") : r.err;
      return false;
    }
    m.raw = value;
    out = std::move(m);
    return true;
  };
  if (!value.is_object())
    return finish(r.fail("manifest", "expected a JSON object"));
  const json *version = r.member(value, "", "format_version", true);
  if (!version)
    return finish(false);
  if (!version->is_number_integer())
    return finish(r.fail("format_version", "expected an integer"));
  m.formatVersion = version->get<int>();
  if (m.formatVersion != static_cast<int>(kFormatVersion))
    return finish(r.fail("format_version", "unsupported manifest version " +
                                               std::to_string(m.formatVersion) +
                                               " (this runtime reads version " +
                                               std::to_string(kFormatVersion) +
                                               ")"));
  if (!r.getString(value, "", "producer", false, m.producer) ||
      !r.getString(value, "", "source", false, m.source))
    return finish(false);

  const json *entry = nullptr, *args = nullptr;
  if (!r.getObject(value, "", "entry", true, entry) ||
      !r.getString(*entry, "entry", "name", true, m.entryName) ||
      !r.getArray(*entry, "entry", "args", true, args))
    return finish(false);
  std::set<std::string> names;
  for (size_t i = 0; i < args->size(); ++i) {
    std::string path = "entry.args[" + std::to_string(i) + "]";
    ArgInfo arg;
    if (!parseArg(r, (*args)[i], path, arg))
      return finish(false);
    if (!names.insert(arg.name).second)
      return finish(
          r.fail(path + ".name", "duplicate argument name '" + arg.name + "'"));
    m.args.push_back(std::move(arg));
  }

  const json *targets = nullptr;
  if (!r.getArray(value, "", "targets", true, targets))
    return finish(false);
  for (size_t i = 0; i < targets->size(); ++i) {
    TargetInfo target;
    if (!parseTarget(r, (*targets)[i], "targets[" + std::to_string(i) + "]",
                     target))
      return finish(false);
    m.targets.push_back(std::move(target));
  }

  const json *layers = nullptr;
  if (!r.getArray(value, "", "layers", false, layers))
    return finish(false);
  return finish(true);
}

const ArgInfo *Manifest::findArg(std::string_view name) const {
  for (const ArgInfo &arg : args)
    if (arg.name == name)
      return &arg;
  return nullptr;
}

std::vector<const ArgInfo *> Manifest::argsWithRole(ArgRole role) const {
  std::vector<const ArgInfo *> result;
  for (const ArgInfo &arg : args)
    if (arg.role == role)
      result.push_back(&arg);
  return result;
}

bool Manifest::hasTargetKind(std::string_view kind) const {
  for (const TargetInfo &t : targets)
    if (t.kind == kind)
      return true;
  return false;
}

bool qfm::checkManifestAgainstSections(
    const Manifest &manifest,
    const std::function<int64_t(const std::string &)> &sizeOf,
    std::string &err) {
  for (size_t i = 0; i < manifest.args.size(); ++i) {
    const ArgInfo &arg = manifest.args[i];
    if (arg.role != ArgRole::Weight)
      continue;
    std::string what =
        "entry.args[" + std::to_string(i) + "]: weight '" + arg.name + "'";
    if (isDynamic(arg.shape)) {
      err = what + " has a dynamic shape " + formatShape(arg.shape);
      return false;
    }
    int64_t size = sizeOf(arg.section);
    if (size < 0) {
      err = what + ": no section '" + arg.section + "'";
      return false;
    }
    if (static_cast<uint64_t>(size) != arg.byteSize()) {
      err = what + " (" + dtypeName(arg.dtype) + " " + formatShape(arg.shape) +
            ") needs " + std::to_string(arg.byteSize()) +
            " bytes, but section '" + arg.section + "' holds " +
            std::to_string(size);
      return false;
    }
  }
  for (size_t i = 0; i < manifest.targets.size(); ++i) {
    const TargetInfo &t = manifest.targets[i];
    std::string what = "targets[" + std::to_string(i) + "] (" + t.label() + ")";
    if (sizeOf(t.library) < 0) {
      err = what + ": no library section '" + t.library + "'";
      return false;
    }
    if (!t.ptx.empty() && sizeOf(t.ptx) < 0) {
      err = what + ": no PTX section '" + t.ptx + "'";
      return false;
    }
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Reader
//===----------------------------------------------------------------------===//

namespace {
/// A SAX handler that only records the first syntax error.
struct SyntaxErrorFinder : nlohmann::json_sax<json> {
  size_t position = 0;
  std::string message;

  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t &) override { return true; }
  bool string(string_t &) override { return true; }
  bool binary(binary_t &) override { return true; }
  bool start_object(std::size_t) override { return true; }
  bool key(string_t &) override { return true; }
  bool end_object() override { return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t at, const std::string &,
                   const nlohmann::detail::exception &e) override {
    position = at;
    message = e.what();
    // Drop nlohmann's "[json.exception.parse_error.101] " prefix.
    size_t bracket = message.find("] ");
    if (bracket != std::string::npos)
      message = message.substr(bracket + 2);
    return false;
  }
};
} // namespace

File::~File() {
  if (mapping)
    ::munmap(mapping, size);
}

const File::Section *File::findSection(std::string_view name) const {
  for (const Section &s : sectionList)
    if (s.name == name)
      return &s;
  return nullptr;
}

std::unique_ptr<File> File::open(const std::string &path, std::string &err) {
  std::unique_ptr<File> file(new File());
  file->filePath = path;

  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    err = path + ": cannot open: " + std::strerror(errno);
    return nullptr;
  }
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    err = path + ": cannot stat: " + std::strerror(errno);
    ::close(fd);
    return nullptr;
  }
  if (!S_ISREG(st.st_mode)) {
    err = path + ": not a regular file";
    ::close(fd);
    return nullptr;
  }
  file->size = static_cast<uint64_t>(st.st_size);
  if (file->size > 0) {
    void *p = ::mmap(nullptr, file->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) {
      err = path + ": cannot map: " + std::strerror(errno);
      ::close(fd);
      return nullptr;
    }
    file->mapping = p;
  }
  ::close(fd);

  std::string problem;
  try {
    if (!file->validate(problem)) {
      err = oneLine(path + ": " + problem);
      return nullptr;
    }
  } catch (const std::exception &e) {
    err = oneLine(path + ": " + e.what());
    return nullptr;
  }
  return file;
}

bool File::validate(std::string &err) {
  const auto *base = static_cast<const uint8_t *>(mapping);
  if (size < sizeof(kMagic) || std::memcmp(base, kMagic, sizeof(kMagic)) != 0) {
    err = "not a qforge module (bad magic at byte offset 0)";
    return false;
  }
  if (size < kHeaderSize) {
    err = "truncated: file has " + std::to_string(size) +
          " bytes, less than the " + std::to_string(kHeaderSize) +
          "-byte header (byte offset " + std::to_string(size) + ")";
    return false;
  }
  formatVersion = readLE<uint32_t>(base + 8);
  if (formatVersion != kFormatVersion) {
    err = "unsupported format version " + std::to_string(formatVersion) +
          ", this runtime reads version " + std::to_string(kFormatVersion) +
          " (byte offset 8)";
    return false;
  }
  uint32_t count = readLE<uint32_t>(base + 12);
  uint64_t tableOffset = readLE<uint64_t>(base + 16);
  uint64_t declaredSize = readLE<uint64_t>(base + 24);
  uint64_t tableHash = readLE<uint64_t>(base + 32);
  if (declaredSize > size) {
    err = "truncated: header says " + std::to_string(declaredSize) +
          " bytes, file has " + std::to_string(size) + " (byte offset 24)";
    return false;
  }
  if (declaredSize < size) {
    err = "header says " + std::to_string(declaredSize) + " bytes, file has " +
          std::to_string(size) + " (trailing data) (byte offset 24)";
    return false;
  }
  for (size_t i = 40; i < kHeaderSize; ++i) {
    if (base[i] != 0) {
      err = "reserved header bytes are not zero (byte offset " +
            std::to_string(i) + ")";
      return false;
    }
  }
  uint64_t tableBytes = uint64_t(count) * kSectionEntrySize;
  if (tableOffset < kHeaderSize || tableOffset > size ||
      tableBytes > size - tableOffset) {
    err = "section table (" + std::to_string(count) +
          " entries at byte offset " + std::to_string(tableOffset) +
          ") lies outside the file (" + std::to_string(size) +
          " bytes) (byte offset 16)";
    return false;
  }
  if (fnv1a64(base + tableOffset, tableBytes) != tableHash) {
    err = "section table (byte offset " + std::to_string(tableOffset) + ", " +
          std::to_string(count) + " entries) is corrupted: checksum mismatch";
    return false;
  }

  std::set<std::string> names;
  for (uint32_t i = 0; i < count; ++i) {
    uint64_t entryOffset = tableOffset + uint64_t(i) * kSectionEntrySize;
    const uint8_t *entry = base + entryOffset;
    std::string where = "section table entry " + std::to_string(i) +
                        " (byte offset " + std::to_string(entryOffset) + ")";
    const char *rawName = reinterpret_cast<const char *>(entry);
    size_t nameLen = strnlen(rawName, kSectionNameSize);
    if (nameLen == kSectionNameSize || nameLen == 0) {
      err = where + ": " +
            (nameLen == 0 ? "empty section name" : "unterminated section name");
      return false;
    }
    Section s;
    s.name.assign(rawName, nameLen);
    s.offset = readLE<uint64_t>(entry + 40);
    s.size = readLE<uint64_t>(entry + 48);
    s.hash = readLE<uint64_t>(entry + 56);
    if (!names.insert(s.name).second) {
      err = where + ": duplicate section '" + s.name + "'";
      return false;
    }
    if (s.offset < kHeaderSize || s.offset > size || s.size > size - s.offset) {
      err = where + ": " + describeSection(s.name, s.offset, s.size) +
            " lies outside the file (" + std::to_string(size) + " bytes)";
      return false;
    }
    if (s.offset % kSectionAlignment != 0) {
      err = where + ": " + describeSection(s.name, s.offset, s.size) +
            " is not " + std::to_string(kSectionAlignment) + "-byte aligned";
      return false;
    }
    s.data = base + s.offset;
    sectionList.push_back(std::move(s));
  }

  // Sections and the table must not share bytes: a byte that belongs to two
  // places would let one checksum vouch for data read as something else.
  struct Extent {
    uint64_t begin, end;
    std::string what;
  };
  std::vector<Extent> extents;
  extents.push_back({tableOffset, tableOffset + tableBytes,
                     "the section table (byte offset " +
                         std::to_string(tableOffset) + ", " +
                         std::to_string(tableBytes) + " bytes)"});
  for (const Section &s : sectionList)
    extents.push_back({s.offset, s.offset + s.size,
                       describeSection(s.name, s.offset, s.size)});
  std::sort(extents.begin(), extents.end(),
            [](const Extent &a, const Extent &b) {
              return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
            });
  const Extent *last = nullptr;
  for (const Extent &e : extents) {
    if (e.begin == e.end)
      continue;
    if (last && e.begin < last->end) {
      err = e.what + " overlaps " + last->what;
      return false;
    }
    last = &e;
  }

  // Verify the checksums; large modules use several threads.
  std::vector<uint8_t> bad(sectionList.size(), 0);
  uint64_t total = 0;
  for (const Section &s : sectionList)
    total += s.size;
  unsigned workers = 1;
  if (total >= (64u << 20) && sectionList.size() > 1)
    workers = std::max(1u, std::min(8u, std::thread::hardware_concurrency()));
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < sectionList.size(); i = next++) {
      const Section &s = sectionList[i];
      bad[i] = fnv1a64(s.data, s.size) != s.hash;
    }
  };
  if (workers > 1) {
    std::vector<std::thread> threads;
    for (unsigned w = 0; w < workers; ++w)
      threads.emplace_back(work);
    for (std::thread &t : threads)
      t.join();
  } else {
    work();
  }
  for (size_t i = 0; i < sectionList.size(); ++i) {
    if (bad[i]) {
      const Section &s = sectionList[i];
      err = describeSection(s.name, s.offset, s.size) +
            " is corrupted: checksum mismatch";
      return false;
    }
  }

  const Section *manifestSection = findSection(kManifestSection);
  if (!manifestSection) {
    err = "no 'manifest' section (section table at byte offset " +
          std::to_string(tableOffset) + ")";
    return false;
  }
  std::string where = "bad manifest (byte offset " +
                      std::to_string(manifestSection->offset) + ", " +
                      std::to_string(manifestSection->size) + " bytes)";
  // Parse without exceptions (this library is also linked into code built
  // without them); on a syntax error, a SAX pass finds the position.
  const uint8_t *text = manifestSection->data;
  json document = json::parse(text, text + manifestSection->size, nullptr,
                              /*allow_exceptions=*/false);
  if (document.is_discarded()) {
    SyntaxErrorFinder finder;
    json::sax_parse(text, text + manifestSection->size, &finder,
                    json::input_format_t::json, /*strict=*/true);
    uint64_t at = manifestSection->offset +
                  (finder.position > 0 ? finder.position - 1 : 0);
    err = where + ": invalid JSON at byte offset " + std::to_string(at) +
          (finder.message.empty() ? "" : ": " + finder.message);
    return false;
  }
  std::string schemaErr;
  if (!Manifest::fromJson(document, manifestData, schemaErr)) {
    err = where + ": " + schemaErr;
    return false;
  }
  auto sizeOf = [this](const std::string &name) -> int64_t {
    const Section *s = findSection(name);
    return s ? static_cast<int64_t>(s->size) : -1;
  };
  if (!checkManifestAgainstSections(manifestData, sizeOf, schemaErr)) {
    err = where + ": " + schemaErr;
    return false;
  }
  return true;
}

//===----------------------------------------------------------------------===//
// Writer
//===----------------------------------------------------------------------===//

void Writer::addSection(const std::string &name, const void *data,
                        size_t size) {
  const auto *bytes = static_cast<const uint8_t *>(data);
  addSection(name, std::vector<uint8_t>(bytes, bytes + (bytes ? size : 0)));
}

void Writer::addSection(const std::string &name, std::vector<uint8_t> bytes) {
  if (checkSectionName(name))
    pending.push_back({name, std::move(bytes)});
}

void Writer::addSectionView(const std::string &name, const void *data,
                            size_t size) {
  if (checkSectionName(name))
    pending.push_back(
        {name, {}, static_cast<const uint8_t *>(data), data ? size : 0});
}

/// Whether `name` may name a new section; records the first problem.
bool Writer::checkSectionName(const std::string &name) {
  if (!firstError.empty())
    return false;
  if (name.empty() || name.size() >= kSectionNameSize) {
    firstError = "section name '" + name + "' must have 1 to " +
                 std::to_string(kSectionNameSize - 1) + " characters";
    return false;
  }
  if (name.find('\0') != std::string::npos) {
    firstError = "section name contains a NUL character";
    return false;
  }
  if (name == kManifestSection) {
    firstError = "section name 'manifest' is reserved for the manifest";
    return false;
  }
  for (const PendingSection &s : pending) {
    if (s.name == name) {
      firstError = "duplicate section '" + name + "'";
      return false;
    }
  }
  return true;
}

void Writer::setManifest(const json &manifest) {
  try {
    manifestText =
        manifest.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
    hasManifest = true;
  } catch (const std::exception &e) {
    if (firstError.empty())
      firstError = std::string("cannot serialize the manifest: ") + e.what();
  }
}

/// The placement of every section and the header + table bytes.
struct Writer::Layout {
  struct Placed {
    const uint8_t *data;
    uint64_t size;
    uint64_t offset;
  };
  std::vector<Placed> sections;
  std::vector<uint8_t> header;
  std::vector<uint8_t> table;
  uint64_t tableOffset = 0;
  uint64_t fileSize = 0;
};

bool Writer::prepare(Layout &layout, std::string &err) const {
  if (!firstError.empty()) {
    err = firstError;
    return false;
  }
  if (!hasManifest) {
    err = "no manifest was set";
    return false;
  }
  Manifest parsed;
  std::string problem;
  if (!Manifest::fromJson(json::parse(manifestText, nullptr, false), parsed,
                          problem)) {
    err = "invalid manifest: " + problem;
    return false;
  }
  auto sizeOf = [this](const std::string &name) -> int64_t {
    for (const PendingSection &s : pending)
      if (s.name == name)
        return static_cast<int64_t>(s.size());
    return -1;
  };
  if (!checkManifestAgainstSections(parsed, sizeOf, problem)) {
    err = "invalid manifest: " + problem;
    return false;
  }

  // The manifest comes first so that `head` shows it; the table comes last.
  std::vector<std::pair<const std::string *, Layout::Placed>> placed;
  static const std::string manifestName = kManifestSection;
  uint64_t offset = kHeaderSize;
  auto place = [&](const std::string &name, const uint8_t *data,
                   uint64_t size) {
    offset = alignUp(offset, kSectionAlignment);
    placed.push_back({&name, {data, size, offset}});
    offset += size;
  };
  place(manifestName, reinterpret_cast<const uint8_t *>(manifestText.data()),
        manifestText.size());
  for (const PendingSection &s : pending)
    place(s.name, s.data(), s.size());

  layout.tableOffset = alignUp(offset, kSectionAlignment);
  layout.table.assign(placed.size() * kSectionEntrySize, 0);
  for (size_t i = 0; i < placed.size(); ++i) {
    const auto &[name, s] = placed[i];
    uint8_t *entry = layout.table.data() + i * kSectionEntrySize;
    std::memcpy(entry, name->data(), name->size());
    writeLE<uint64_t>(entry + 40, s.offset);
    writeLE<uint64_t>(entry + 48, s.size);
    writeLE<uint64_t>(entry + 56, fnv1a64(s.data, s.size));
    layout.sections.push_back(s);
  }
  layout.fileSize = layout.tableOffset + layout.table.size();
  layout.header.assign(kHeaderSize, 0);
  uint8_t *h = layout.header.data();
  std::memcpy(h, kMagic, sizeof(kMagic));
  writeLE<uint32_t>(h + 8, kFormatVersion);
  writeLE<uint32_t>(h + 12, static_cast<uint32_t>(placed.size()));
  writeLE<uint64_t>(h + 16, layout.tableOffset);
  writeLE<uint64_t>(h + 24, layout.fileSize);
  writeLE<uint64_t>(h + 32, fnv1a64(layout.table.data(), layout.table.size()));
  return true;
}

bool Writer::serialize(std::vector<uint8_t> &out, std::string &err) const {
  try {
    Layout layout;
    if (!prepare(layout, err))
      return false;
    out.assign(layout.fileSize, 0);
    std::memcpy(out.data(), layout.header.data(), layout.header.size());
    for (const Layout::Placed &s : layout.sections)
      if (s.size)
        std::memcpy(out.data() + s.offset, s.data, s.size);
    std::memcpy(out.data() + layout.tableOffset, layout.table.data(),
                layout.table.size());
  } catch (const std::exception &e) {
    err = std::string("cannot build the module: ") + e.what();
    return false;
  }
  return true;
}

bool Writer::write(const std::string &path, std::string &err) const {
  Layout layout;
  try {
    if (!prepare(layout, err)) {
      err = path + ": " + err;
      return false;
    }
  } catch (const std::exception &e) {
    err = path + ": cannot build the module: " + e.what();
    return false;
  }

  static const uint8_t zeros[kSectionAlignment] = {};
  return writeFileAtomically(
      path,
      [&](const ChunkWriter &write) {
        uint64_t position = 0;
        auto put = [&](const uint8_t *data, uint64_t size) {
          position += size;
          return write(data, size);
        };
        auto padTo = [&](uint64_t offset) {
          return put(zeros, offset - position);
        };
        bool ok = put(layout.header.data(), layout.header.size());
        for (const Layout::Placed &sec : layout.sections)
          ok = ok && padTo(sec.offset) && put(sec.data, sec.size);
        return ok && padTo(layout.tableOffset) &&
               put(layout.table.data(), layout.table.size());
      },
      err);
}

bool qfm::writeFileAtomically(
    const std::string &path,
    const std::function<bool(const ChunkWriter &)> &body, std::string &err) {
  std::string temp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    err = path + ": cannot write: " + std::strerror(errno);
    return false;
  }
  int savedErrno = 0;
  ChunkWriter write = [&](const void *data, size_t size) {
    const auto *p = static_cast<const uint8_t *>(data);
    while (size > 0) {
      ssize_t n = ::write(fd, p, size);
      if (n < 0 && errno == EINTR)
        continue;
      if (n < 0) {
        savedErrno = errno;
        return false;
      }
      p += n;
      size -= static_cast<size_t>(n);
    }
    return true;
  };
  bool ok = body(write);
  if (::close(fd) != 0 && ok) {
    ok = false;
    savedErrno = errno;
  }
  if (!ok) {
    ::unlink(temp.c_str());
    err = path + ": write failed" +
          (savedErrno ? std::string(": ") + std::strerror(savedErrno)
                      : std::string());
    return false;
  }
  if (::rename(temp.c_str(), path.c_str()) != 0) {
    err = path + ": cannot write: " + std::strerror(errno);
    ::unlink(temp.c_str());
    return false;
  }
  return true;
}
