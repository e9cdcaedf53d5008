//===- Runtime.h - Loading and running qforge modules -----------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// The public API of libqforge_runtime:
//
//   std::string err;
//   auto module = rt::Module::load("model.qfm", err);        // validates
//   auto session = rt::Session::create(module, rt::DeviceKind::Auto, err);
//   rt::TensorMap outputs;
//   session->run({{"x", x}}, outputs, err);
//
// A session binds the module's entry point to one device: the CPU (the
// `code.cpu` shared object, loaded from memory) or a CUDA GPU (the `code.cuda`
// host object, which launches the module's PTX kernels through the `mgpu*`
// functions this library exports on top of the CUDA driver API). The driver is
// opened with dlopen, so the runtime works, and says why CUDA is unavailable,
// on machines without one.
//
// The compiled entry point is `extern "C" void entry(void **args)`: args[i]
// points to the strided memref descriptor of argument i (weights, inputs and
// outputs in manifest order).
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_RUNTIME_RUNTIME_H
#define QFORGE_RUNTIME_RUNTIME_H

#include "qforge/Runtime/QFM.h"
#include "qforge/Runtime/TensorIO.h"

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace qforge {
namespace rt {

using TensorMap = std::map<std::string, HostTensor>;

//===----------------------------------------------------------------------===//
// Devices
//===----------------------------------------------------------------------===//

enum class DeviceKind { Auto, CPU, CUDA };

/// Parses "auto", "cpu" or "cuda".
bool parseDeviceKind(const std::string &text, DeviceKind &kind);
const char *deviceKindName(DeviceKind kind);

/// The CUDA device the runtime uses (device 0 as the driver numbers them;
/// CUDA_VISIBLE_DEVICES selects it).
struct CUDADeviceInfo {
  bool available = false;
  std::string reason;        ///< Why not, when unavailable.
  std::string name;          ///< e.g. "NVIDIA H100 80GB HBM3".
  int computeCapability = 0; ///< 90 for compute capability 9.0.
  int multiprocessors = 0;
  uint64_t totalMemory = 0; ///< Bytes.
};

/// Opens the CUDA driver (once) and describes device 0.
const CUDADeviceInfo &cudaDeviceInfo();

/// True if a CUDA device can be used; otherwise `reason` says why, e.g.
/// "CUDA driver not found (libcuda.so.1): ..." or "no CUDA device".
bool cudaAvailable(std::string &reason);

/// The compute capability a "sm_XY" / "sm_XYa" arch names (XY), or -1.
int parseCUDAArch(const std::string &arch);

/// True if this CPU has the named feature (LLVM / GCC spelling: "avx2",
/// "fma", "avx512f", "avx512vnni", "f16c", "bmi2", "sse4.2", ...).
bool hostHasCPUFeature(const std::string &feature);
/// The features of `target` this CPU lacks, in manifest order.
std::vector<std::string> missingCPUFeatures(const qfm::TargetInfo &target);

//===----------------------------------------------------------------------===//
// Memref descriptors
//===----------------------------------------------------------------------===//

/// Bytes of a strided memref descriptor of the given rank:
/// {void *allocated; void *aligned; int64_t offset; int64_t sizes[rank];
///  int64_t strides[rank];}.
constexpr size_t memrefDescriptorSize(size_t rank) {
  return sizeof(void *) * 2 + sizeof(int64_t) * (1 + 2 * rank);
}

/// Builds the `void **args` array of an entry call: one descriptor per
/// argument, contiguous row-major with offset 0.
class MemRefArgs {
public:
  /// Appends a descriptor for a buffer of the given shape.
  void add(void *data, const std::vector<int64_t> &shape);
  /// Appends the pointer to a results area: one descriptor per result of the
  /// given ranks, back to back, which the entry fills with buffers it returns.
  void addResults(const std::vector<size_t> &ranks);
  void **data() { return pointers.data(); }
  size_t size() const { return pointers.size(); }
  /// The descriptor of argument i, as 64-bit words.
  const int64_t *descriptor(size_t i) const { return storage[i].get(); }

  /// A buffer the entry returned: it owns `allocated` (malloc'd on the CPU,
  /// device memory on CUDA); the data start at `data`.
  struct Returned {
    void *allocated = nullptr;
    const uint8_t *data = nullptr;
    std::vector<int64_t> shape;
    bool contiguous = true;
  };
  /// Reads result k of the results area.
  Returned result(size_t k, size_t elementSize) const;

private:
  std::vector<std::unique_ptr<int64_t[]>> storage;
  std::vector<void *> pointers;
  std::vector<size_t> resultRanks;
  int64_t *results = nullptr;
};

//===----------------------------------------------------------------------===//
// Shared objects loaded from memory
//===----------------------------------------------------------------------===//

/// An ELF shared object loaded from bytes without writing into the working
/// directory: through memfd_create, or else a temporary file in $TMPDIR that
/// is removed right after loading. Symbols it leaves undefined resolve
/// against the process (e.g. the mgpu* functions of this library).
class SharedObject {
public:
  /// `what` names the object in messages (e.g. "section 'code.cpu'").
  static std::unique_ptr<SharedObject> load(const void *data, size_t size,
                                            const std::string &what,
                                            std::string &err);
  ~SharedObject();
  SharedObject(const SharedObject &) = delete;
  SharedObject &operator=(const SharedObject &) = delete;

  /// The address of `name`, or null with a message.
  void *symbol(const std::string &name, std::string &err) const;

private:
  SharedObject() = default;
  void *handle = nullptr;
  std::string what;
};

//===----------------------------------------------------------------------===//
// Module
//===----------------------------------------------------------------------===//

/// A loaded, validated module. Weights stay in the read-only mapping.
class Module {
public:
  static std::shared_ptr<Module> load(const std::string &path,
                                      std::string &err);

  const std::string &path() const { return qfmFile->path(); }
  const qfm::File &file() const { return *qfmFile; }
  const qfm::Manifest &manifest() const { return qfmFile->manifest(); }
  std::vector<const qfm::ArgInfo *> inputs() const;
  std::vector<const qfm::ArgInfo *> outputs() const;

  /// A human-readable summary: entry arguments, targets (and whether this
  /// CPU can run them), sections and the per-layer table if present.
  std::string describe() const;

private:
  std::unique_ptr<qfm::File> qfmFile;
};

//===----------------------------------------------------------------------===//
// Backends and sessions
//===----------------------------------------------------------------------===//

/// Runs the entry point of one target on one device.
class Backend {
public:
  virtual ~Backend();
  /// e.g. "cpu (x86-64-v3)" or "cuda:0 (NVIDIA H100, sm_90)".
  virtual std::string description() const = 0;
  /// Calls the entry. `inputs` are host buffers in manifest order of the input
  /// arguments (dtypes and shapes checked); a null one is a carried input,
  /// fed from the output kept at the previous call (setCarry). `outputs`
  /// receives the results, in manifest order of the outputs, with the shapes
  /// the entry returned; a carried output is kept instead, and its tensor left
  /// empty.
  virtual bool run(const std::vector<const HostTensor *> &inputs,
                   std::vector<HostTensor> &outputs, std::string &err) = 0;

  /// `outputToInput[k]` is the input (index among the inputs) that output k
  /// feeds at the next call, or -1. Drops whatever was kept.
  void setCarry(std::vector<int> outputToInput);
  /// The shape of the kept output that feeds input `input`, or null.
  const std::vector<int64_t> *carriedShape(size_t input) const;

protected:
  /// Frees a buffer the entry returned (the CPU buffer pool, device memory).
  virtual void releaseBuffer(void *allocated) = 0;
  /// The data of the kept output that feeds input `input`, or null.
  void *carriedData(size_t input) const;
  /// Frees every kept output; derived destructors call it.
  void dropCarried();
  /// Turns the buffers an entry returned (the results area of `args`) into
  /// host tensors, in manifest order of the outputs: `copy(dst, src, bytes)`
  /// moves the data to the host; carried outputs are kept (replacing, and
  /// freeing, what was kept before) and every other buffer freed, on every
  /// path. A failed call keeps nothing.
  bool collectResults(const MemRefArgs &args, const qfm::Manifest &manifest,
                      std::vector<HostTensor> &outputs,
                      const std::function<bool(void *, const void *, size_t,
                                               std::string &)> &copy,
                      std::string &err);

private:
  struct Kept {
    void *allocated = nullptr;
    void *data = nullptr;
    std::vector<int64_t> shape;
  };
  std::vector<int> carry;      ///< per output: the input it feeds, or -1
  std::map<size_t, Kept> kept; ///< by input
};

/// The ranks of the module's outputs, for MemRefArgs::addResults.
std::vector<size_t> outputRanks(const qfm::Manifest &manifest);

/// The buffer pool generated CPU code allocates from (MLIR's generic
/// allocation functions): buffers an entry returns are released with cpuFree.
void *cpuAllocate(size_t size);
void cpuFree(void *p);

/// Threads the CPU code of modules runs its parallel loops on (OpenMP), for
/// every later call in this process; 0 (the default) means all cores.
void setCPUThreads(int threads);
int cpuThreads();

std::unique_ptr<Backend> createCPUBackend(std::shared_ptr<const Module> module,
                                          const qfm::TargetInfo &target,
                                          std::string &err);
std::unique_ptr<Backend> createCUDABackend(std::shared_ptr<const Module> module,
                                           const qfm::TargetInfo &target,
                                           std::string &err);

/// The module's entry point bound to a device.
class Session {
public:
  /// Chooses the device: Auto takes CUDA if the module has a cuda target and
  /// a device is usable, else the CPU if the module has a cpu target this CPU
  /// can run. Fails with one line saying why nothing fits.
  static std::unique_ptr<Session> create(std::shared_ptr<const Module> module,
                                         DeviceKind device, std::string &err);

  DeviceKind device() const { return kind; }
  const qfm::TargetInfo &target() const { return *chosenTarget; }
  std::string description() const { return backend->description(); }
  const Module &loadedModule() const { return *module; }

  /// Runs the entry on `inputs` (by name; dtype and shape must match the
  /// manifest) and fills `outputs` with every output of the entry that is
  /// not carried.
  bool run(const TensorMap &inputs, TensorMap &outputs, std::string &err);

  /// From the next call on, output `output` stays with the backend (in device
  /// memory on CUDA, with no copy on the CPU) and becomes input `input` of the
  /// call after it: a KV cache's present -> past. `run` then leaves that output
  /// out, and takes that input only when given (an empty past, to start over),
  /// which replaces what was kept. Same dtype and rank, else false with `err`.
  bool carry(const std::string &output, const std::string &input,
             std::string &err);
  /// The shape of what is kept for input `input`; empty if nothing is.
  std::vector<int64_t> carriedShape(const std::string &input) const;

private:
  Session() = default;
  std::shared_ptr<const Module> module;
  const qfm::TargetInfo *chosenTarget = nullptr;
  DeviceKind kind = DeviceKind::CPU;
  std::unique_ptr<Backend> backend;
  std::vector<int> carries; ///< per output: the input it feeds, or -1
};

} // namespace rt
} // namespace qforge

#endif // QFORGE_RUNTIME_RUNTIME_H
