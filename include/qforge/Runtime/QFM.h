//===- QFM.h - The .qfm module file format ----------------------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// A .qfm file holds one compiled model: a JSON manifest, the packed weights,
// native code for each target and the PTX it was built from. This header
// declares the format's reader (`qfm::File`, which maps the file read-only and
// validates it completely before anything uses it) and its writer
// (`qfm::Writer`, used by the compiler). docs/module-format.md describes the
// layout for users.
//
// Nothing here throws: every fallible call returns a status and fills a
// one-line message that names the file and the byte offset of the problem.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_RUNTIME_QFM_H
#define QFORGE_RUNTIME_QFM_H

#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace qforge {
namespace qfm {

//===----------------------------------------------------------------------===//
// Constants of format version 1
//===----------------------------------------------------------------------===//

constexpr char kMagic[8] = {'Q', 'F', 'M', 'O', 'D', 'U', 'L', 'E'};
constexpr uint32_t kFormatVersion = 1;
constexpr size_t kHeaderSize = 64;
constexpr size_t kSectionEntrySize = 64;
constexpr size_t kSectionNameSize = 40;
constexpr size_t kSectionAlignment = 64;
constexpr const char *kManifestSection = "manifest";

/// FNV-1a, 64 bit, over `size` bytes, continuing from `hash`.
uint64_t fnv1a64(const void *data, size_t size,
                 uint64_t hash = 0xcbf29ce484222325ULL);

//===----------------------------------------------------------------------===//
// Element types
//===----------------------------------------------------------------------===//

enum class DType : uint8_t { F32, F16, BF16, F64, I8, U8, I16, I32, I64, I1 };

/// The manifest spelling: "f32", "f16", "bf16", "f64", "i8", "u8", "i16",
/// "i32", "i64", "i1".
const char *dtypeName(DType type);
/// Parses a manifest spelling; false if `name` is not one.
bool parseDType(std::string_view name, DType &type);
/// Bytes per element (i1 is stored as one byte per element).
size_t dtypeSize(DType type);

/// Number of elements of a static shape (1 for rank 0). Negative (dynamic)
/// dimensions count as 0; a count beyond 2^63 - 1 saturates (shapes from
/// files are checked with checkedByteSize first).
int64_t numElements(const std::vector<int64_t> &shape);
/// Bytes of `shape` in `type`; false if a dimension is negative or the
/// element count or the byte count exceeds 2^63 - 1.
bool checkedByteSize(const std::vector<int64_t> &shape, DType type,
                     uint64_t &bytes);
/// True if some dimension is negative (dynamic).
bool isDynamic(const std::vector<int64_t> &shape);
/// "[1,4]"; "[]" for rank 0; dynamic dimensions print as "?".
std::string formatShape(const std::vector<int64_t> &shape);

//===----------------------------------------------------------------------===//
// Manifest
//===----------------------------------------------------------------------===//

enum class ArgRole : uint8_t { Weight, Input, Output };
const char *argRoleName(ArgRole role);

/// One argument of the entry point, in call order.
struct ArgInfo {
  ArgRole role = ArgRole::Input;
  std::string name;
  std::string section; ///< Weights only: the section holding the bytes.
  DType dtype = DType::F32;
  std::vector<int64_t> shape;

  int64_t numElements() const { return qfm::numElements(shape); }
  size_t byteSize() const {
    return static_cast<size_t>(numElements()) * dtypeSize(dtype);
  }
};

/// One compiled form of the entry point.
struct TargetInfo {
  std::string kind;    ///< "cpu" or "cuda" (others are kept, not run).
  std::string library; ///< Section holding the ELF shared object.
  std::string symbol;  ///< `extern "C" void symbol(void **args)`.
  // cpu
  std::string cpu;                   ///< e.g. "x86-64-v3".
  std::vector<std::string> features; ///< CPU features the code needs.
  /// Where the code allocates the buffers it returns: "runtime-pool" (the
  /// runtime's generic allocation functions) or "" (malloc; older modules).
  std::string buffers;
  // cuda
  std::string arch; ///< e.g. "sm_90".
  std::string ptx;  ///< Section holding the PTX text (for inspection).

  /// "cpu:x86-64-v3", "cuda:sm_90".
  std::string label() const;
};

/// The parsed manifest (schema version 1). `raw` keeps the whole document,
/// including the informational "layers" table and keys a later version adds.
struct Manifest {
  int formatVersion = 1;
  std::string producer;
  std::string source;
  std::string entryName;
  std::vector<ArgInfo> args;
  std::vector<TargetInfo> targets;
  nlohmann::json raw;

  /// Fills `out` from `json`; on a schema violation returns false with a
  /// message such as "entry.args[1]: missing key 'dtype'".
  static bool fromJson(const nlohmann::json &json, Manifest &out,
                       std::string &err);

  const ArgInfo *findArg(std::string_view name) const;
  std::vector<const ArgInfo *> argsWithRole(ArgRole role) const;
  bool hasTargetKind(std::string_view kind) const;
};

//===----------------------------------------------------------------------===//
// Reader
//===----------------------------------------------------------------------===//

/// A validated, read-only mapping of a .qfm file. Section data stay mapped for
/// the lifetime of the object; weights are used in place.
class File {
public:
  struct Section {
    std::string name;
    uint64_t offset = 0;
    uint64_t size = 0;
    uint64_t hash = 0;
    const uint8_t *data = nullptr; ///< Into the mapping (64-byte aligned).
    std::string_view text() const {
      return {reinterpret_cast<const char *>(data), size};
    }
  };

  /// Maps `path` and validates magic, version, size, the section table, every
  /// section's bounds and checksum, and the manifest. On failure returns null
  /// and a message that names the file and the byte offset.
  static std::unique_ptr<File> open(const std::string &path, std::string &err);

  ~File();
  File(const File &) = delete;
  File &operator=(const File &) = delete;

  const std::string &path() const { return filePath; }
  uint64_t fileSize() const { return size; }
  uint32_t version() const { return formatVersion; }
  const std::vector<Section> &sections() const { return sectionList; }
  const Section *findSection(std::string_view name) const;
  const Manifest &manifest() const { return manifestData; }

private:
  File() = default;
  bool validate(std::string &err);

  std::string filePath;
  void *mapping = nullptr;
  uint64_t size = 0;
  uint32_t formatVersion = 0;
  std::vector<Section> sectionList;
  Manifest manifestData;
};

/// Checks that a manifest is consistent with the sections of a module (weight
/// sections exist and have the right sizes, target libraries exist). `sizeOf`
/// returns the size of a section or -1 if there is none.
bool checkManifestAgainstSections(
    const Manifest &manifest,
    const std::function<int64_t(const std::string &)> &sizeOf,
    std::string &err);

//===----------------------------------------------------------------------===//
// Writer
//===----------------------------------------------------------------------===//

/// Appends `size` bytes to the file being written; false on an I/O error.
using ChunkWriter = std::function<bool(const void *data, size_t size)>;

/// Writes a file through `path + ".tmp.<pid>"`, renamed over `path` once `body`
/// (which emits the contents through the ChunkWriter it is given) returns true;
/// the temporary is removed on any failure, so readers never see a partial
/// file.
bool writeFileAtomically(const std::string &path,
                         const std::function<bool(const ChunkWriter &)> &body,
                         std::string &err);

/// Builds a .qfm file in memory and writes it atomically: the bytes go to
/// `path + ".tmp.<pid>"`, which is renamed over `path` once complete and
/// removed on any failure, so a failed write never leaves a partial file.
class Writer {
public:
  /// Adds a section; the bytes are copied. Names are 1 to 39 characters and
  /// unique; "manifest" is reserved for setManifest. Problems are reported by
  /// write().
  void addSection(const std::string &name, const void *data, size_t size);
  /// Same, taking ownership of `bytes`.
  void addSection(const std::string &name, std::vector<uint8_t> bytes);
  /// Same, without a copy: the caller keeps `data` alive and unchanged until
  /// the writer is done (large weights go straight from the IR to the file).
  void addSectionView(const std::string &name, const void *data, size_t size);
  /// Sets the manifest, stored as the first section.
  void setManifest(const nlohmann::json &manifest);

  /// Validates the manifest against the sections and writes the file.
  bool write(const std::string &path, std::string &err) const;

  /// The complete file image (what write() stores).
  bool serialize(std::vector<uint8_t> &out, std::string &err) const;

private:
  struct Layout;
  bool prepare(Layout &layout, std::string &err) const;

  struct PendingSection {
    std::string name;
    std::vector<uint8_t> bytes; // owned contents, unless `view` is set
    const uint8_t *view = nullptr;
    size_t viewSize = 0;
    const uint8_t *data() const { return view ? view : bytes.data(); }
    size_t size() const { return view ? viewSize : bytes.size(); }
  };
  bool checkSectionName(const std::string &name);
  std::vector<PendingSection> pending;
  std::string manifestText;
  bool hasManifest = false;
  std::string firstError;
};

} // namespace qfm
} // namespace qforge

#endif // QFORGE_RUNTIME_QFM_H
