//===- Runtime.cpp - Loading and running qforge modules ---------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// Module loading and description, device selection, argument checking, memref
// descriptors, in-memory loading of shared objects and the CPU feature check.
// The device-specific parts live in CPUBackend.cpp and CUDABackend.cpp.
//
//===----------------------------------------------------------------------===//

#include "qforge/Runtime/Runtime.h"

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <dlfcn.h>
#include <fcntl.h>
#include <fstream>
#include <set>
#include <sstream>
#include <sys/mman.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

using namespace qforge;
using namespace qforge::rt;
using qfm::ArgInfo;
using qfm::ArgRole;
using qfm::TargetInfo;

Backend::~Backend() = default;

//===----------------------------------------------------------------------===//
// Devices
//===----------------------------------------------------------------------===//

bool rt::parseDeviceKind(const std::string &text, DeviceKind &kind) {
  if (text == "auto")
    kind = DeviceKind::Auto;
  else if (text == "cpu")
    kind = DeviceKind::CPU;
  else if (text == "cuda" || text == "gpu")
    kind = DeviceKind::CUDA;
  else
    return false;
  return true;
}

const char *rt::deviceKindName(DeviceKind kind) {
  switch (kind) {
  case DeviceKind::Auto:
    return "auto";
  case DeviceKind::CPU:
    return "cpu";
  case DeviceKind::CUDA:
    return "cuda";
  }
  return "?";
}

bool rt::cudaAvailable(std::string &reason) {
  const CUDADeviceInfo &info = cudaDeviceInfo();
  if (!info.available)
    reason = info.reason;
  return info.available;
}

int rt::parseCUDAArch(const std::string &arch) {
  if (arch.size() < 4 || arch.compare(0, 3, "sm_") != 0)
    return -1;
  int value = 0;
  size_t i = 3;
  for (; i < arch.size() && arch[i] >= '0' && arch[i] <= '9'; ++i)
    value = value * 10 + (arch[i] - '0');
  if (i == 3 || value > 10000)
    return -1;
  if (i < arch.size() &&
      !(i + 1 == arch.size() && (arch[i] == 'a' || arch[i] == 'f')))
    return -1;
  return value;
}

//===----------------------------------------------------------------------===//
// CPU features
//===----------------------------------------------------------------------===//

namespace {
/// Lower case without '_', '-' and '.', so that "sse4.2", "sse4_2" and
/// "avx512_vnni" / "avx512vnni" compare equal.
std::string normalizeFeature(const std::string &name) {
  std::string out;
  for (char c : name) {
    if (c == '_' || c == '-' || c == '.')
      continue;
    out += static_cast<char>(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
  }
  return out;
}

#if defined(__x86_64__) || defined(__i386__)
enum Reg {
  L1ECX, // leaf 1
  L1EDX,
  L7EBX, // leaf 7, subleaf 0
  L7ECX,
  L7EDX,
  L7S1EAX, // leaf 7, subleaf 1
  L7S1EDX,
  LDS1EAX, // leaf 0xd, subleaf 1
  E1ECX,   // leaf 0x80000001
  E8EBX,   // leaf 0x80000008
  NumRegs
};
enum StateNeed { NoState, AVXState, AVX512State, AMXState };

struct X86Feature {
  const char *name;
  Reg reg;
  unsigned bit;
  StateNeed state;
};

constexpr X86Feature kX86Features[] = {
    {"x87", L1EDX, 0, NoState},
    {"cx8", L1EDX, 8, NoState},
    {"cmov", L1EDX, 15, NoState},
    {"mmx", L1EDX, 23, NoState},
    {"fxsr", L1EDX, 24, NoState},
    {"sse", L1EDX, 25, NoState},
    {"sse2", L1EDX, 26, NoState},
    {"sse3", L1ECX, 0, NoState},
    {"pclmul", L1ECX, 1, NoState},
    {"ssse3", L1ECX, 9, NoState},
    {"fma", L1ECX, 12, AVXState},
    {"cx16", L1ECX, 13, NoState},
    {"sse4.1", L1ECX, 19, NoState},
    {"sse4.2", L1ECX, 20, NoState},
    {"crc32", L1ECX, 20, NoState},
    {"movbe", L1ECX, 22, NoState},
    {"popcnt", L1ECX, 23, NoState},
    {"aes", L1ECX, 25, NoState},
    {"xsave", L1ECX, 26, NoState},
    {"avx", L1ECX, 28, AVXState},
    {"f16c", L1ECX, 29, AVXState},
    {"rdrnd", L1ECX, 30, NoState},
    {"sahf", E1ECX, 0, NoState},
    {"xsaveopt", LDS1EAX, 0, NoState},
    {"xsavec", LDS1EAX, 1, NoState},
    {"xsaves", LDS1EAX, 3, NoState},
    {"fsgsbase", L7EBX, 0, NoState},
    {"sgx", L7EBX, 2, NoState},
    {"bmi", L7EBX, 3, NoState},
    {"avx2", L7EBX, 5, AVXState},
    {"bmi2", L7EBX, 8, NoState},
    {"invpcid", L7EBX, 10, NoState},
    {"rtm", L7EBX, 11, NoState},
    {"avx512f", L7EBX, 16, AVX512State},
    {"evex512", L7EBX, 16, AVX512State},
    {"avx512dq", L7EBX, 17, AVX512State},
    {"rdseed", L7EBX, 18, NoState},
    {"adx", L7EBX, 19, NoState},
    {"avx512ifma", L7EBX, 21, AVX512State},
    {"clflushopt", L7EBX, 23, NoState},
    {"clwb", L7EBX, 24, NoState},
    {"avx512cd", L7EBX, 28, AVX512State},
    {"sha", L7EBX, 29, NoState},
    {"avx512bw", L7EBX, 30, AVX512State},
    {"avx512vl", L7EBX, 31, AVX512State},
    {"avx512vbmi", L7ECX, 1, AVX512State},
    {"pku", L7ECX, 3, NoState},
    {"waitpkg", L7ECX, 5, NoState},
    {"avx512vbmi2", L7ECX, 6, AVX512State},
    {"shstk", L7ECX, 7, NoState},
    {"gfni", L7ECX, 8, NoState},
    {"vaes", L7ECX, 9, AVXState},
    {"vpclmulqdq", L7ECX, 10, AVXState},
    {"avx512vnni", L7ECX, 11, AVX512State},
    {"avx512bitalg", L7ECX, 12, AVX512State},
    {"avx512vpopcntdq", L7ECX, 14, AVX512State},
    {"rdpid", L7ECX, 22, NoState},
    {"kl", L7ECX, 23, NoState},
    {"cldemote", L7ECX, 25, NoState},
    {"movdiri", L7ECX, 27, NoState},
    {"movdir64b", L7ECX, 28, NoState},
    {"enqcmd", L7ECX, 29, NoState},
    {"uintr", L7EDX, 5, NoState},
    {"avx512vp2intersect", L7EDX, 8, AVX512State},
    {"serialize", L7EDX, 14, NoState},
    {"tsxldtrk", L7EDX, 16, NoState},
    {"amx-bf16", L7EDX, 22, AMXState},
    {"avx512fp16", L7EDX, 23, AVX512State},
    {"amx-tile", L7EDX, 24, AMXState},
    {"amx-int8", L7EDX, 25, AMXState},
    {"sha512", L7S1EAX, 0, AVXState},
    {"sm3", L7S1EAX, 1, AVXState},
    {"sm4", L7S1EAX, 2, AVXState},
    {"raoint", L7S1EAX, 3, NoState},
    {"avxvnni", L7S1EAX, 4, AVXState},
    {"avx512bf16", L7S1EAX, 5, AVX512State},
    {"cmpccxadd", L7S1EAX, 7, NoState},
    {"amx-fp16", L7S1EAX, 21, AMXState},
    {"hreset", L7S1EAX, 22, NoState},
    {"avxifma", L7S1EAX, 23, AVXState},
    {"avxvnniint8", L7S1EDX, 4, AVXState},
    {"avxneconvert", L7S1EDX, 5, AVXState},
    {"avxvnniint16", L7S1EDX, 10, AVXState},
    {"prefetchi", L7S1EDX, 14, NoState},
    {"avx10.1", L7S1EDX, 19, AVX512State},
    {"avx10.1-256", L7S1EDX, 19, AVXState},
    {"avx10.1-512", L7S1EDX, 19, AVX512State},
    {"lzcnt", E1ECX, 5, NoState},
    {"abm", E1ECX, 5, NoState},
    {"sse4a", E1ECX, 6, NoState},
    {"prfchw", E1ECX, 8, NoState},
    {"xop", E1ECX, 11, AVXState},
    {"lwp", E1ECX, 15, NoState},
    {"fma4", E1ECX, 16, AVXState},
    {"tbm", E1ECX, 21, NoState},
    {"mwaitx", E1ECX, 29, NoState},
    {"clzero", E8EBX, 0, NoState},
    {"rdpru", E8EBX, 4, NoState},
    {"wbnoinvd", E8EBX, 9, NoState},
};

struct X86CPU {
  uint32_t regs[NumRegs] = {};
  uint64_t xcr0 = 0;

  X86CPU() {
    unsigned a, b, c, d;
    unsigned maxLeaf = __get_cpuid_max(0, nullptr);
    if (maxLeaf >= 1 && __get_cpuid(1, &a, &b, &c, &d)) {
      regs[L1ECX] = c;
      regs[L1EDX] = d;
    }
    if (maxLeaf >= 7) {
      __cpuid_count(7, 0, a, b, c, d);
      regs[L7EBX] = b;
      regs[L7ECX] = c;
      regs[L7EDX] = d;
      if (a >= 1) {
        __cpuid_count(7, 1, a, b, c, d);
        regs[L7S1EAX] = a;
        regs[L7S1EDX] = d;
      }
    }
    if (maxLeaf >= 0xd) {
      __cpuid_count(0xd, 1, a, b, c, d);
      regs[LDS1EAX] = a;
    }
    unsigned maxExtended = __get_cpuid_max(0x80000000u, nullptr);
    if (maxExtended >= 0x80000001u && __get_cpuid(0x80000001u, &a, &b, &c, &d))
      regs[E1ECX] = c;
    if (maxExtended >= 0x80000008u && __get_cpuid(0x80000008u, &a, &b, &c, &d))
      regs[E8EBX] = b;
    // OSXSAVE: the OS saves the extended register state we read from XCR0.
    if (regs[L1ECX] & (1u << 27)) {
      uint32_t lo, hi;
      __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
      xcr0 = (uint64_t(hi) << 32) | lo;
    }
  }

  bool stateEnabled(StateNeed need) const {
    switch (need) {
    case NoState:
      return true;
    case AVXState:
      return (xcr0 & 0x6) == 0x6;
    case AVX512State:
      return (xcr0 & 0xe6) == 0xe6;
    case AMXState:
      return (xcr0 & 0x60000) == 0x60000;
    }
    return false;
  }
};
#endif

/// The "flags" (x86) or "Features" (Arm) line of /proc/cpuinfo, normalized.
const std::set<std::string> &cpuinfoFlags() {
  static const std::set<std::string> flags = [] {
    std::set<std::string> result;
    std::ifstream in("/proc/cpuinfo");
    std::string line;
    while (std::getline(in, line)) {
      if (line.compare(0, 5, "flags") != 0 &&
          line.compare(0, 8, "Features") != 0)
        continue;
      size_t colon = line.find(':');
      if (colon == std::string::npos)
        continue;
      std::istringstream words(line.substr(colon + 1));
      std::string word;
      while (words >> word)
        result.insert(normalizeFeature(word));
      break;
    }
    return result;
  }();
  return flags;
}
} // namespace

bool rt::hostHasCPUFeature(const std::string &feature) {
  std::string name = feature;
  if (!name.empty() && name[0] == '-')
    return true; // a feature the code must *not* use
  if (!name.empty() && name[0] == '+')
    name = name.substr(1);
  std::string key = normalizeFeature(name);
#if defined(__x86_64__) || defined(__i386__)
  static const X86CPU cpu;
  if (key == "64bit")
    return sizeof(void *) == 8;
  for (const X86Feature &f : kX86Features) {
    if (normalizeFeature(f.name) == key)
      return (cpu.regs[f.reg] >> f.bit & 1) && cpu.stateEnabled(f.state);
  }
#endif
  return cpuinfoFlags().count(key) != 0;
}

std::vector<std::string> rt::missingCPUFeatures(const TargetInfo &target) {
  std::vector<std::string> missing;
  for (const std::string &f : target.features)
    if (!hostHasCPUFeature(f))
      missing.push_back(f);
  return missing;
}

//===----------------------------------------------------------------------===//
// Memref descriptors
//===----------------------------------------------------------------------===//

void MemRefArgs::add(void *data, const std::vector<int64_t> &shape) {
  size_t rank = shape.size();
  static_assert(sizeof(void *) == sizeof(int64_t), "64-bit hosts only");
  auto words = std::make_unique<int64_t[]>(3 + 2 * rank);
  std::memcpy(&words[0], &data, sizeof(void *)); // allocated
  std::memcpy(&words[1], &data, sizeof(void *)); // aligned
  words[2] = 0;                                  // offset
  int64_t stride = 1;
  for (size_t i = rank; i-- > 0;) {
    words[3 + i] = shape[i];
    words[3 + rank + i] = stride;
    stride *= shape[i];
  }
  pointers.push_back(words.get());
  storage.push_back(std::move(words));
}

void MemRefArgs::addResults(const std::vector<size_t> &ranks) {
  size_t words = 0;
  for (size_t rank : ranks)
    words += 3 + 2 * rank;
  auto area = std::make_unique<int64_t[]>(words ? words : 1);
  results = area.get();
  resultRanks = ranks;
  pointers.push_back(area.get());
  storage.push_back(std::move(area));
}

MemRefArgs::Returned MemRefArgs::result(size_t k, size_t elementSize) const {
  const int64_t *words = results;
  for (size_t i = 0; i < k; ++i)
    words += 3 + 2 * resultRanks[i];
  size_t rank = resultRanks[k];
  Returned r;
  const uint8_t *aligned;
  std::memcpy(&r.allocated, &words[0], sizeof(void *));
  std::memcpy(&aligned, &words[1], sizeof(void *));
  r.data = aligned + words[2] * static_cast<int64_t>(elementSize);
  r.shape.assign(words + 3, words + 3 + rank);
  int64_t stride = 1;
  for (size_t i = rank; i-- > 0;) {
    if (r.shape[i] != 1 && words[3 + rank + i] != stride)
      r.contiguous = false;
    stride *= r.shape[i];
  }
  return r;
}

std::vector<size_t> rt::outputRanks(const qfm::Manifest &manifest) {
  std::vector<size_t> ranks;
  for (const ArgInfo *a : manifest.argsWithRole(ArgRole::Output))
    ranks.push_back(a->shape.size());
  return ranks;
}

void Backend::setCarry(std::vector<int> outputToInput) {
  dropCarried();
  carry = std::move(outputToInput);
}

const std::vector<int64_t> *Backend::carriedShape(size_t input) const {
  auto it = kept.find(input);
  return it == kept.end() ? nullptr : &it->second.shape;
}

void *Backend::carriedData(size_t input) const {
  auto it = kept.find(input);
  return it == kept.end() ? nullptr : it->second.data;
}

void Backend::dropCarried() {
  for (auto &[input, k] : kept)
    releaseBuffer(k.allocated);
  kept.clear();
}

bool Backend::collectResults(
    const MemRefArgs &args, const qfm::Manifest &manifest,
    std::vector<HostTensor> &outputs,
    const std::function<bool(void *, const void *, size_t, std::string &)>
        &copy,
    std::string &err) {
  std::vector<const ArgInfo *> outs = manifest.argsWithRole(ArgRole::Output);
  // Tensors already in `outputs` keep their buffers (a caller that runs a
  // module step after step allocates nothing new).
  outputs.resize(outs.size());
  std::vector<void *> toRelease;
  std::map<size_t, Kept> keep;
  std::vector<MemRefArgs::Returned> returned;
  for (size_t k = 0; k < outs.size(); ++k)
    returned.push_back(args.result(k, qfm::dtypeSize(outs[k]->dtype)));
  bool ok = true;
  for (size_t k = 0; k < outs.size(); ++k) {
    const ArgInfo &a = *outs[k];
    const MemRefArgs::Returned &r = returned[k];
    if (ok && !r.contiguous) {
      err = "output '" + a.name + "' was returned with a strided layout";
      ok = false;
    }
    for (size_t d = 0; ok && d < a.shape.size(); ++d) {
      if (r.shape[d] < 0 || (a.shape[d] >= 0 && a.shape[d] != r.shape[d])) {
        err = "output '" + a.name + "' came back with shape " +
              qfm::formatShape(r.shape) + ", expected " +
              qfm::formatShape(a.shape);
        ok = false;
      }
    }
    int feeds = k < carry.size() ? carry[k] : -1;
    if (ok && feeds >= 0) {
      // Kept where it is, unless another output shares its buffer (then a
      // copy would be needed, which the caller did not ask for).
      bool shared = false;
      for (size_t j = 0; j < outs.size(); ++j)
        shared |= j != k && returned[j].allocated == r.allocated;
      if (!r.allocated || shared) {
        err = "output '" + a.name +
              "' cannot be carried: the entry did not return it in a buffer "
              "of its own";
        ok = false;
      } else {
        keep[size_t(feeds)] = {r.allocated, const_cast<uint8_t *>(r.data),
                               r.shape};
        outputs[k] = HostTensor();
        continue;
      }
    }
    if (ok) {
      HostTensor &t = outputs[k];
      t.reshape(a.dtype, r.shape);
      if (t.byteSize())
        ok = copy(t.data(), r.data, t.byteSize(), err);
    }
    if (r.allocated && std::find(toRelease.begin(), toRelease.end(),
                                 r.allocated) == toRelease.end())
      toRelease.push_back(r.allocated);
  }
  // What fed this call goes; what it returned for the next call stays.
  dropCarried();
  if (ok) {
    kept = std::move(keep);
  } else {
    for (auto &[input, k] : keep)
      toRelease.push_back(k.allocated);
  }
  // An entry may return one buffer as several outputs (a graph output listed
  // twice, or one tensor feeding two results): each is freed once, after
  // every copy.
  for (void *allocated : toRelease)
    releaseBuffer(allocated);
  return ok;
}

//===----------------------------------------------------------------------===//
// Shared objects loaded from memory
//===----------------------------------------------------------------------===//

namespace {
bool writeAllTo(int fd, const void *data, size_t size) {
  const auto *p = static_cast<const uint8_t *>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, p, size);
    if (n < 0 && errno == EINTR)
      continue;
    if (n <= 0)
      return false;
    p += n;
    size -= static_cast<size_t>(n);
  }
  return true;
}

std::string lastDlError() {
  const char *message = dlerror();
  return message ? message : "unknown error";
}
} // namespace

std::unique_ptr<SharedObject> SharedObject::load(const void *data, size_t size,
                                                 const std::string &what,
                                                 std::string &err) {
  if (size < 4 || std::memcmp(data,
                              "\x7f"
                              "ELF",
                              4) != 0) {
    err = what + " is not an ELF shared object";
    return nullptr;
  }
  std::unique_ptr<SharedObject> object(new SharedObject());
  object->what = what;
  std::string firstError;

  // Preferred: an anonymous in-memory file, opened through /proc.
  int fd = ::memfd_create("qforge-code", MFD_CLOEXEC);
  if (fd >= 0) {
    std::string path = "/proc/self/fd/" + std::to_string(fd);
    if (writeAllTo(fd, data, size) && ::access(path.c_str(), R_OK) == 0) {
      object->handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
      if (!object->handle)
        firstError = lastDlError();
    }
    ::close(fd);
  }
  if (object->handle)
    return object;

  // Fallback: a private temporary file, removed as soon as it is loaded.
  const char *tmpdir = std::getenv("TMPDIR");
  std::string pattern =
      std::string(tmpdir && *tmpdir ? tmpdir : "/tmp") + "/qforge-code-XXXXXX";
  std::vector<char> name(pattern.begin(), pattern.end());
  name.push_back('\0');
  fd = ::mkstemp(name.data());
  if (fd < 0) {
    err = "cannot load " + what + ": " +
          (firstError.empty() ? "cannot create a temporary file in '" +
                                    pattern.substr(0, pattern.rfind('/')) +
                                    "': " + std::strerror(errno)
                              : firstError);
    return nullptr;
  }
  bool written = writeAllTo(fd, data, size);
  ::close(fd);
  if (written) {
    object->handle = dlopen(name.data(), RTLD_NOW | RTLD_LOCAL);
    if (!object->handle && firstError.empty())
      firstError = lastDlError();
  } else if (firstError.empty()) {
    firstError =
        std::string("cannot write a temporary file: ") + std::strerror(errno);
  }
  ::unlink(name.data());
  if (!object->handle) {
    err = "cannot load " + what + ": " + firstError;
    return nullptr;
  }
  return object;
}

SharedObject::~SharedObject() {
  if (handle)
    dlclose(handle);
}

void *SharedObject::symbol(const std::string &name, std::string &err) const {
  dlerror();
  void *address = dlsym(handle, name.c_str());
  if (!address)
    err = what + " has no symbol '" + name + "'";
  return address;
}

//===----------------------------------------------------------------------===//
// Module
//===----------------------------------------------------------------------===//

std::shared_ptr<Module> Module::load(const std::string &path,
                                     std::string &err) {
  std::unique_ptr<qfm::File> file = qfm::File::open(path, err);
  if (!file)
    return nullptr;
  auto module = std::shared_ptr<Module>(new Module());
  module->qfmFile = std::move(file);
  return module;
}

std::vector<const ArgInfo *> Module::inputs() const {
  return manifest().argsWithRole(ArgRole::Input);
}

std::vector<const ArgInfo *> Module::outputs() const {
  return manifest().argsWithRole(ArgRole::Output);
}

namespace {
/// Left-aligned text columns.
class Table {
public:
  explicit Table(std::vector<std::string> header) { rows.push_back(header); }
  void add(std::vector<std::string> row) { rows.push_back(std::move(row)); }
  std::string render(const std::string &indent) const {
    std::vector<size_t> widths;
    for (const auto &row : rows)
      for (size_t i = 0; i < row.size(); ++i) {
        if (widths.size() <= i)
          widths.push_back(0);
        widths[i] = std::max(widths[i], row[i].size());
      }
    std::string out;
    for (const auto &row : rows) {
      std::string line = indent;
      for (size_t i = 0; i < row.size(); ++i) {
        line += row[i];
        if (i + 1 < row.size())
          line += std::string(widths[i] - row[i].size() + 2, ' ');
      }
      while (!line.empty() && line.back() == ' ')
        line.pop_back();
      out += line + "\n";
    }
    return out;
  }

private:
  std::vector<std::vector<std::string>> rows;
};

std::string humanBytes(uint64_t bytes) {
  char buf[32];
  if (bytes < 1024)
    return std::to_string(bytes) + " B";
  if (bytes < (1u << 20))
    std::snprintf(buf, sizeof(buf), "%.1f KiB", bytes / 1024.0);
  else if (bytes < (1u << 30))
    std::snprintf(buf, sizeof(buf), "%.1f MiB", bytes / 1048576.0);
  else
    std::snprintf(buf, sizeof(buf), "%.2f GiB", bytes / 1073741824.0);
  return buf;
}

std::string jsonCell(const nlohmann::json &value) {
  if (value.is_string())
    return value.get<std::string>();
  if (value.is_number_float()) {
    char buf[32];
    std::snprintf(buf, sizeof(buf), "%.4g", value.get<double>());
    return buf;
  }
  if (value.is_null())
    return "-";
  return value.dump();
}
} // namespace

std::string Module::describe() const {
  const qfm::Manifest &m = manifest();
  std::ostringstream os;
  os << "module: " << path() << " (" << humanBytes(file().fileSize())
     << ", format version " << file().version() << ")\n";
  if (!m.producer.empty())
    os << "producer: " << m.producer << "\n";
  if (!m.source.empty())
    os << "source: " << m.source << "\n";

  uint64_t weightBytes = 0;
  Table args({"#", "role", "name", "dtype", "shape", "section"});
  for (size_t i = 0; i < m.args.size(); ++i) {
    const ArgInfo &a = m.args[i];
    if (a.role == ArgRole::Weight)
      weightBytes += a.byteSize();
    args.add({std::to_string(i), qfm::argRoleName(a.role), a.name,
              qfm::dtypeName(a.dtype), qfm::formatShape(a.shape),
              a.section.empty() ? "-" : a.section});
  }
  os << "\nentry: " << m.entryName << " (" << m.args.size() << " arguments, "
     << humanBytes(weightBytes) << " of weights)\n"
     << args.render("  ");

  os << "\ntargets:\n";
  if (m.targets.empty())
    os << "  (none)\n";
  Table targets({"kind", "target", "library", "symbol", "details"});
  for (const TargetInfo &t : m.targets) {
    std::string details;
    if (t.kind == "cpu") {
      std::string features;
      for (const std::string &f : t.features)
        features += (features.empty() ? "" : ",") + f;
      details = "features " + (features.empty() ? "-" : features);
      std::vector<std::string> missing = missingCPUFeatures(t);
      if (missing.empty()) {
        details += "; this CPU can run it";
      } else {
        std::string list;
        for (const std::string &f : missing)
          list += (list.empty() ? "" : ",") + f;
        details += "; this CPU lacks " + list;
      }
    } else if (t.kind == "cuda") {
      details = "ptx " + (t.ptx.empty() ? std::string("-") : t.ptx);
    }
    targets.add({t.kind, t.label(), t.library, t.symbol, details});
  }
  if (!m.targets.empty())
    os << targets.render("  ");

  os << "\nsections:\n";
  Table sections({"name", "offset", "size", "fnv1a64"});
  for (const qfm::File::Section &s : file().sections()) {
    char hash[24];
    std::snprintf(hash, sizeof(hash), "%016" PRIx64, s.hash);
    sections.add(
        {s.name, std::to_string(s.offset), std::to_string(s.size), hash});
  }
  os << sections.render("  ");

  auto layers = m.raw.find("layers");
  if (layers != m.raw.end() && layers->is_array() && !layers->empty()) {
    std::vector<std::string> columns = {"name",       "method", "bits",
                                        "group_size", "bytes",  "error"};
    for (const auto &layer : *layers)
      if (layer.is_object())
        for (auto it = layer.begin(); it != layer.end(); ++it)
          if (std::find(columns.begin(), columns.end(), it.key()) ==
              columns.end())
            columns.push_back(it.key());
    Table table(columns);
    for (const auto &layer : *layers) {
      std::vector<std::string> row;
      for (const std::string &c : columns) {
        auto it = layer.is_object() ? layer.find(c) : layer.end();
        row.push_back(layer.is_object() && it != layer.end() ? jsonCell(*it)
                                                             : "-");
      }
      table.add(row);
    }
    os << "\nlayers (" << layers->size() << "):\n" << table.render("  ");
  }
  return os.str();
}

//===----------------------------------------------------------------------===//
// Session
//===----------------------------------------------------------------------===//

namespace {
std::string targetList(const qfm::Manifest &m) {
  std::string list;
  for (const TargetInfo &t : m.targets)
    list += (list.empty() ? "" : ", ") + t.label();
  return list;
}

/// The cuda target whose architecture suits a device of compute capability
/// `cc` best (the newest one not newer than the device), or null.
const TargetInfo *pickCUDATarget(const qfm::Manifest &m, int cc,
                                 std::string &why) {
  const TargetInfo *best = nullptr;
  int bestArch = -1;
  std::string archs;
  for (const TargetInfo &t : m.targets) {
    if (t.kind != "cuda")
      continue;
    archs += (archs.empty() ? "" : ", ") + t.arch;
    int arch = parseCUDAArch(t.arch);
    bool specific =
        !t.arch.empty() && (t.arch.back() == 'a' || t.arch.back() == 'f');
    bool fits = arch >= 0 && (specific ? arch == cc : arch <= cc);
    if (fits && arch > bestArch) {
      best = &t;
      bestArch = arch;
    }
  }
  if (!best)
    why = "the module's GPU code (" + archs +
          ") needs a newer GPU than this one (sm_" + std::to_string(cc) + ")";
  return best;
}

/// The cpu target this CPU can run that uses the most features, or null with
/// the first missing feature in `why`.
const TargetInfo *pickCPUTarget(const qfm::Manifest &m, std::string &why) {
  const TargetInfo *best = nullptr;
  for (const TargetInfo &t : m.targets) {
    if (t.kind != "cpu")
      continue;
    std::vector<std::string> missing = missingCPUFeatures(t);
    if (missing.empty()) {
      if (!best || t.features.size() > best->features.size())
        best = &t;
    } else if (why.empty()) {
      why = "module needs CPU feature '" + missing.front() +
            "', which this CPU lacks";
    }
  }
  return best;
}
} // namespace

std::unique_ptr<Session> Session::create(std::shared_ptr<const Module> module,
                                         DeviceKind device, std::string &err) {
  const qfm::Manifest &m = module->manifest();
  const std::string &path = module->path();
  if (m.targets.empty()) {
    err = path + ": module has no compiled targets";
    return nullptr;
  }
  bool hasCPU = m.hasTargetKind("cpu");
  bool hasCUDA = m.hasTargetKind("cuda");

  std::unique_ptr<Session> session(new Session());
  session->module = module;

  std::string cudaReason;
  if (device != DeviceKind::CPU && hasCUDA) {
    const TargetInfo *target = nullptr;
    const CUDADeviceInfo &info = cudaDeviceInfo();
    if (info.available)
      target = pickCUDATarget(m, info.computeCapability, cudaReason);
    else
      cudaReason = info.reason;
    if (target) {
      session->backend = createCUDABackend(module, *target, err);
      if (!session->backend) {
        err = path + ": " + err;
        return nullptr;
      }
      session->chosenTarget = target;
      session->kind = DeviceKind::CUDA;
      return session;
    }
    if (device == DeviceKind::CUDA) {
      err =
          path + ": cannot run on cuda: " +
          (info.available ? cudaReason
                          : "no CUDA device is available (" + cudaReason + ")");
      return nullptr;
    }
  }
  if (device == DeviceKind::CUDA) {
    err = path + ": module was compiled only for " + targetList(m) +
          ", not for cuda";
    return nullptr;
  }

  if (!hasCPU) {
    err = path + ": module was compiled only for " + targetList(m);
    if (hasCUDA)
      err += cudaDeviceInfo().available
                 ? ", and " + cudaReason
                 : ", and no CUDA device is available (" + cudaReason + ")";
    else
      err += ", which this runtime cannot run";
    return nullptr;
  }
  std::string why;
  const TargetInfo *target = pickCPUTarget(m, why);
  if (!target) {
    err = path + ": " + why;
    return nullptr;
  }
  session->backend = createCPUBackend(module, *target, err);
  if (!session->backend) {
    err = path + ": " + err;
    return nullptr;
  }
  session->chosenTarget = target;
  session->kind = DeviceKind::CPU;
  return session;
}

bool Session::run(const TensorMap &inputs, TensorMap &outputs,
                  std::string &err) {
  const qfm::Manifest &m = module->manifest();
  std::vector<const HostTensor *> inputList;
  std::string inputNames;
  for (const ArgInfo *a : m.argsWithRole(ArgRole::Input))
    inputNames += (inputNames.empty() ? "'" : ", '") + a->name + "'";
  if (inputNames.empty())
    inputNames = "none";

  for (const auto &entry : inputs) {
    const ArgInfo *a = m.findArg(entry.first);
    if (!a || a->role != ArgRole::Input) {
      err = "unknown input '" + entry.first +
            "' (the module's inputs: " + inputNames + ")";
      return false;
    }
  }
  for (const ArgInfo *a : m.argsWithRole(ArgRole::Input)) {
    auto it = inputs.find(a->name);
    std::string expected = std::string(qfm::dtypeName(a->dtype)) + " " +
                           qfm::formatShape(a->shape);
    if (it == inputs.end()) {
      size_t index = inputList.size();
      if (backend->carriedShape(index)) {
        inputList.push_back(nullptr); // fed by the output kept last call
        continue;
      }
      err = "missing input '" + a->name + "' (" + expected + ")";
      return false;
    }
    const HostTensor &t = it->second;
    bool fits = t.shape.size() == a->shape.size();
    for (size_t d = 0; fits && d < t.shape.size(); ++d)
      fits = a->shape[d] < 0 || a->shape[d] == t.shape[d];
    if (!fits) {
      err = "input '" + a->name + "': expected shape " +
            qfm::formatShape(a->shape) + " (" + qfm::dtypeName(a->dtype) +
            "), got " + qfm::formatShape(t.shape);
      return false;
    }
    if (t.dtype != a->dtype) {
      err = "input '" + a->name + "': expected dtype " +
            qfm::dtypeName(a->dtype) + " (shape " + qfm::formatShape(a->shape) +
            "), got " + qfm::dtypeName(t.dtype);
      return false;
    }
    size_t needed = static_cast<size_t>(qfm::numElements(t.shape)) *
                    qfm::dtypeSize(a->dtype);
    if (t.byteSize() != needed) {
      err = "input '" + a->name + "': buffer holds " +
            std::to_string(t.byteSize()) + " bytes, " +
            qfm::formatShape(t.shape) + " needs " + std::to_string(needed);
      return false;
    }
    inputList.push_back(&t);
  }

  // The buffers of `outputs` (from an earlier call) are reused.
  std::vector<const ArgInfo *> outs = m.argsWithRole(ArgRole::Output);
  std::vector<HostTensor> outputList(outs.size());
  for (size_t k = 0; k < outs.size(); ++k) {
    auto it = outputs.find(outs[k]->name);
    if (it != outputs.end())
      outputList[k] = std::move(it->second);
  }
  outputs.clear();
  try {
    if (!backend->run(inputList, outputList, err))
      return false;
  } catch (const std::exception &e) {
    err = std::string("run failed: ") + e.what();
    return false;
  }
  for (size_t k = 0; k < outs.size(); ++k)
    if (k >= carries.size() || carries[k] < 0)
      outputs[outs[k]->name] = std::move(outputList.at(k));
  return true;
}

/// The position of the argument named `name` in `list`, or -1.
static int indexOf(const std::vector<const ArgInfo *> &list,
                   const std::string &name) {
  for (size_t i = 0; i < list.size(); ++i)
    if (list[i]->name == name)
      return int(i);
  return -1;
}

bool Session::carry(const std::string &output, const std::string &input,
                    std::string &err) {
  const qfm::Manifest &m = module->manifest();
  std::vector<const ArgInfo *> outs = m.argsWithRole(ArgRole::Output);
  std::vector<const ArgInfo *> ins = m.argsWithRole(ArgRole::Input);
  int k = indexOf(outs, output), i = indexOf(ins, input);
  if (k < 0 || i < 0) {
    err = k < 0 ? "no output '" + output + "' to carry"
                : "no input '" + input + "' to carry '" + output + "' into";
    return false;
  }
  if (outs[k]->dtype != ins[i]->dtype ||
      outs[k]->shape.size() != ins[i]->shape.size()) {
    err = "output '" + output + "' (" + qfm::dtypeName(outs[k]->dtype) + " " +
          qfm::formatShape(outs[k]->shape) + ") cannot feed input '" + input +
          "' (" + qfm::dtypeName(ins[i]->dtype) + " " +
          qfm::formatShape(ins[i]->shape) + ")";
    return false;
  }
  carries.resize(outs.size(), -1);
  carries[size_t(k)] = i;
  backend->setCarry(carries);
  return true;
}

std::vector<int64_t> Session::carriedShape(const std::string &input) const {
  int i = indexOf(module->manifest().argsWithRole(ArgRole::Input), input);
  const std::vector<int64_t> *shape =
      i < 0 ? nullptr : backend->carriedShape(size_t(i));
  return shape ? *shape : std::vector<int64_t>();
}

//===----------------------------------------------------------------------===//
// memrefCopy
//===----------------------------------------------------------------------===//

// MLIR's memref-to-LLVM lowering calls `memrefCopy` for copies between
// memrefs whose layouts are not both contiguous. It takes unranked
// descriptors: {int64_t rank; void *descriptor}.
namespace {
struct UnrankedDescriptor {
  int64_t rank;
  void *descriptor;
};

struct StridedView {
  char *base;
  const int64_t *sizes;
  const int64_t *strides;
};

StridedView viewOf(const UnrankedDescriptor *d, int64_t elemSize) {
  auto *words = static_cast<int64_t *>(d->descriptor);
  char *aligned;
  std::memcpy(&aligned, &words[1], sizeof(void *));
  return {aligned + words[2] * elemSize, words + 3, words + 3 + d->rank};
}
} // namespace

extern "C" __attribute__((visibility("default"))) void
memrefCopy(int64_t elemSize, UnrankedDescriptor *src, UnrankedDescriptor *dst) {
  int64_t rank = src->rank;
  StridedView s = viewOf(src, elemSize);
  StridedView d = viewOf(dst, elemSize);
  for (int64_t i = 0; i < rank; ++i)
    if (s.sizes[i] == 0)
      return;
  std::vector<int64_t> index(static_cast<size_t>(rank), 0);
  int64_t srcOffset = 0, dstOffset = 0;
  while (true) {
    std::memcpy(d.base + dstOffset * elemSize, s.base + srcOffset * elemSize,
                static_cast<size_t>(elemSize));
    int64_t axis = rank - 1;
    for (; axis >= 0; --axis) {
      ++index[axis];
      srcOffset += s.strides[axis];
      dstOffset += d.strides[axis];
      if (index[axis] < s.sizes[axis])
        break;
      srcOffset -= s.strides[axis] * index[axis];
      dstOffset -= d.strides[axis] * index[axis];
      index[axis] = 0;
    }
    if (axis < 0)
      return;
  }
}
