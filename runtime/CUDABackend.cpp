//===- CUDABackend.cpp - Running a module's CUDA code -----------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// Three parts:
//  - the CUDA driver, opened with dlopen and initialised once (device 0 and
//    its primary context);
//  - the mgpu* functions that host code lowered by MLIR's `gpu-to-llvm` calls
//    to load PTX, allocate, copy and launch kernels. They are exported from
//    libqforge_runtime.so so that the `code.cuda` object, loaded with dlopen,
//    resolves them here. They cannot return errors: a failing driver call is
//    recorded and the session reports it after the entry returns;
//  - the CUDA backend: uploads the weights once, and per run copies the inputs
//    in, calls the entry with device pointers and copies the outputs back.
//    Each session has one stream, which every stream the compiled code asks
//    for stands for, and a memory pool (DevicePool.h) its allocations come
//    from; both are bound to the calling thread while the entry runs.
//
//===----------------------------------------------------------------------===//

#include "CudaDriver.h"
#include "DevicePool.h"

#include "qforge/Runtime/Runtime.h"

#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <mutex>

using namespace qforge;
using namespace qforge::rt;
using namespace qforge::rt::cuda;
using qfm::ArgInfo;
using qfm::ArgRole;

//===----------------------------------------------------------------------===//
// The driver
//===----------------------------------------------------------------------===//

namespace {
constexpr const char *kDriverLibrary = "libcuda.so.1";
constexpr CUresult CUDA_ERROR_NO_DEVICE = 100;

struct DriverState {
  Driver *driver = nullptr;
  CUDADeviceInfo info;
};

DriverState openDriver() {
  DriverState state;
  std::string &reason = state.info.reason;
  void *handle = dlopen(kDriverLibrary, RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char *message = dlerror();
    reason = std::string("CUDA driver not found (") + kDriverLibrary +
             "): " + (message ? message : "unknown error");
    return state;
  }
  auto *d = new Driver();
  std::string missing;
  auto resolve = [&](auto &slot, const char *name, bool required) {
    void *address = dlsym(handle, name);
    if (!address && required && missing.empty())
      missing = name;
    slot = reinterpret_cast<std::remove_reference_t<decltype(slot)>>(address);
  };
#define QF_RESOLVE(name) resolve(d->name, #name, true)
  QF_RESOLVE(cuInit);
  QF_RESOLVE(cuDeviceGetCount);
  QF_RESOLVE(cuDeviceGet);
  QF_RESOLVE(cuDeviceGetAttribute);
  QF_RESOLVE(cuDeviceGetName);
  QF_RESOLVE(cuDeviceTotalMem_v2);
  QF_RESOLVE(cuDevicePrimaryCtxRetain);
  QF_RESOLVE(cuCtxSetCurrent);
  QF_RESOLVE(cuCtxSynchronize);
  QF_RESOLVE(cuMemAlloc_v2);
  QF_RESOLVE(cuMemAllocManaged);
  QF_RESOLVE(cuMemFree_v2);
  QF_RESOLVE(cuMemcpyHtoD_v2);
  QF_RESOLVE(cuMemcpyHtoDAsync_v2);
  QF_RESOLVE(cuMemcpyDtoH_v2);
  QF_RESOLVE(cuMemcpy);
  QF_RESOLVE(cuMemcpyAsync);
  QF_RESOLVE(cuMemsetD32_v2);
  QF_RESOLVE(cuMemsetD32Async);
  QF_RESOLVE(cuMemsetD16Async);
  QF_RESOLVE(cuMemHostRegister_v2);
  QF_RESOLVE(cuMemHostUnregister);
  QF_RESOLVE(cuModuleLoadData);
  QF_RESOLVE(cuModuleLoadDataEx);
  QF_RESOLVE(cuModuleUnload);
  QF_RESOLVE(cuModuleGetFunction);
  QF_RESOLVE(cuFuncSetAttribute);
  QF_RESOLVE(cuLaunchKernel);
  resolve(d->cuLaunchKernelEx, "cuLaunchKernelEx", false);
  QF_RESOLVE(cuStreamCreate);
  QF_RESOLVE(cuStreamSynchronize);
  QF_RESOLVE(cuStreamDestroy_v2);
  QF_RESOLVE(cuStreamWaitEvent);
  QF_RESOLVE(cuEventCreate);
  QF_RESOLVE(cuEventRecord);
  QF_RESOLVE(cuEventSynchronize);
  QF_RESOLVE(cuEventDestroy_v2);
  QF_RESOLVE(cuGetErrorString);
  QF_RESOLVE(cuGetErrorName);
#undef QF_RESOLVE
  if (!missing.empty()) {
    reason = std::string("the CUDA driver (") + kDriverLibrary + ") lacks " +
             missing + "; it is too old";
    delete d;
    return state;
  }

  CUresult r = d->cuInit(0);
  if (r == CUDA_ERROR_NO_DEVICE) {
    reason = "no CUDA device";
    delete d;
    return state;
  }
  if (r != CUDA_SUCCESS) {
    reason = "cuInit failed: " + d->errorString(r);
    delete d;
    return state;
  }
  int count = 0;
  r = d->cuDeviceGetCount(&count);
  if (r != CUDA_SUCCESS || count == 0) {
    reason = "no CUDA device";
    delete d;
    return state;
  }
  auto fail = [&](const char *call, CUresult result) {
    reason =
        std::string("CUDA error in ") + call + ": " + d->errorString(result);
    delete d;
    return state;
  };
  if ((r = d->cuDeviceGet(&d->device, 0)) != CUDA_SUCCESS)
    return fail("cuDeviceGet", r);
  int major = 0, minor = 0, sms = 0;
  if ((r = d->cuDeviceGetAttribute(&major,
                                   CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR,
                                   d->device)) != CUDA_SUCCESS ||
      (r = d->cuDeviceGetAttribute(&minor,
                                   CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR,
                                   d->device)) != CUDA_SUCCESS ||
      (r = d->cuDeviceGetAttribute(&sms,
                                   CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT,
                                   d->device)) != CUDA_SUCCESS)
    return fail("cuDeviceGetAttribute", r);
  char name[256] = {};
  if ((r = d->cuDeviceGetName(name, sizeof(name) - 1, d->device)) !=
      CUDA_SUCCESS)
    return fail("cuDeviceGetName", r);
  size_t memory = 0;
  if ((r = d->cuDeviceTotalMem_v2(&memory, d->device)) != CUDA_SUCCESS)
    return fail("cuDeviceTotalMem", r);
  if ((r = d->cuDevicePrimaryCtxRetain(&d->context, d->device)) != CUDA_SUCCESS)
    return fail("cuDevicePrimaryCtxRetain", r);

  // The driver stays open and the context retained until the process ends:
  // code objects unload their kernels from static destructors.
  state.driver = d;
  state.info.available = true;
  state.info.name = name;
  state.info.computeCapability = major * 10 + minor;
  state.info.multiprocessors = sms;
  state.info.totalMemory = memory;
  return state;
}

// The driver state and the recorded error are never destroyed: code objects
// may call mgpu* functions from their static destructors at process exit.
const DriverState &driverState() {
  static const DriverState *state = new DriverState(openDriver());
  return *state;
}

/// What the session running an entry on this thread lends the compiled code:
/// its stream, its memory pool, and the place for the first error (so that
/// concurrent sessions do not see each other's).
struct RunContext {
  CUstream stream;
  DevicePool *pool;
  std::string error;
};
thread_local RunContext *currentRun = nullptr;

/// Binds a session's stream and pool to the calling thread while it runs.
class RunScope {
public:
  explicit RunScope(RunContext &context) : previous(currentRun) {
    currentRun = &context;
  }
  ~RunScope() { currentRun = previous; }

private:
  RunContext *previous;
};

struct ErrorSlot {
  std::mutex mutex;
  std::string first;
};

ErrorSlot &errorSlot() {
  static ErrorSlot *slot = new ErrorSlot();
  return *slot;
}
} // namespace

const Driver *Driver::get(std::string *reason) {
  const DriverState &state = driverState();
  if (!state.driver && reason)
    *reason = state.info.reason;
  return state.driver;
}

std::string Driver::errorString(CUresult result) const {
  const char *text = nullptr, *name = nullptr;
  if (cuGetErrorString(result, &text) != CUDA_SUCCESS || !text)
    text = "unknown error";
  if (cuGetErrorName(result, &name) != CUDA_SUCCESS || !name)
    return std::string(text) + " (error " + std::to_string(result) + ")";
  return std::string(text) + " (" + name + ")";
}

bool Driver::makeCurrent() const {
  thread_local CUcontext current = nullptr;
  if (current == context)
    return true;
  CUresult r = cuCtxSetCurrent(context);
  if (r != CUDA_SUCCESS) {
    recordError("cuCtxSetCurrent", r);
    return false;
  }
  current = context;
  return true;
}

void cuda::recordErrorMessage(const std::string &message) {
  if (currentRun) {
    if (currentRun->error.empty())
      currentRun->error = message;
    return;
  }
  ErrorSlot &slot = errorSlot();
  std::lock_guard<std::mutex> lock(slot.mutex);
  if (slot.first.empty())
    slot.first = message;
}

void cuda::recordError(const char *call, CUresult result) {
  const Driver *d = Driver::get();
  recordErrorMessage(
      std::string("CUDA error in ") + call + ": " +
      (d ? d->errorString(result) : "error " + std::to_string(result)));
}

bool cuda::hasError() {
  if (currentRun)
    return !currentRun->error.empty();
  ErrorSlot &slot = errorSlot();
  std::lock_guard<std::mutex> lock(slot.mutex);
  return !slot.first.empty();
}

bool cuda::takeError(std::string &message) {
  ErrorSlot &slot = errorSlot();
  std::lock_guard<std::mutex> lock(slot.mutex);
  if (slot.first.empty())
    return false;
  message = std::move(slot.first);
  slot.first.clear();
  return true;
}

const CUDADeviceInfo &rt::cudaDeviceInfo() { return driverState().info; }

//===----------------------------------------------------------------------===//
// mgpu* functions called by compiled host code
//===----------------------------------------------------------------------===//

namespace {
/// The driver with the runtime's context current, or null (recorded).
const Driver *mgpuDriver(const char *function) {
  const Driver *d = Driver::get();
  if (!d) {
    recordErrorMessage(std::string(function) +
                       ": the CUDA driver is not available");
    return nullptr;
  }
  d->makeCurrent();
  return d;
}

bool check(const char *call, CUresult result) {
  if (result == CUDA_SUCCESS)
    return true;
  recordError(call, result);
  return false;
}

/// The start and byte size of a contiguous ranked memref descriptor.
void memrefExtent(int64_t rank, const void *descriptor, int64_t elementSize,
                  void *&start, size_t &bytes) {
  const auto *words = static_cast<const int64_t *>(descriptor);
  char *aligned;
  std::memcpy(&aligned, &words[1], sizeof(void *));
  int64_t count = 1;
  for (int64_t i = 0; i < rank; ++i)
    count *= words[3 + i];
  start = aligned + words[2] * elementSize;
  bytes = static_cast<size_t>(count * elementSize);
}
} // namespace

#define QF_MGPU extern "C" __attribute__((visibility("default")))

QF_MGPU CUmodule mgpuModuleLoad(void *data, size_t /*size*/) {
  const Driver *d = mgpuDriver("mgpuModuleLoad");
  CUmodule module = nullptr;
  if (d)
    check("cuModuleLoadData", d->cuModuleLoadData(&module, data));
  return module;
}

QF_MGPU CUmodule mgpuModuleLoadJIT(void *data, int optLevel) {
  const Driver *d = mgpuDriver("mgpuModuleLoadJIT");
  if (!d)
    return nullptr;
  char errorLog[8192] = {};
  int options[] = {CU_JIT_OPTIMIZATION_LEVEL, CU_JIT_ERROR_LOG_BUFFER,
                   CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES};
  void *values[] = {reinterpret_cast<void *>(static_cast<intptr_t>(optLevel)),
                    errorLog, reinterpret_cast<void *>(sizeof(errorLog) - 1)};
  CUmodule module = nullptr;
  CUresult r = d->cuModuleLoadDataEx(&module, data, 3, options, values);
  if (r != CUDA_SUCCESS) {
    std::string log(errorLog);
    while (!log.empty() && (log.back() == '\n' || log.back() == '\0'))
      log.pop_back();
    for (char &c : log)
      if (c == '\n')
        c = ' ';
    recordErrorMessage("CUDA error in cuModuleLoadDataEx (PTX JIT): " +
                       d->errorString(r) + (log.empty() ? "" : ": " + log));
    return nullptr;
  }
  return module;
}

QF_MGPU void mgpuModuleUnload(CUmodule module) {
  const Driver *d = Driver::get();
  if (d && module) {
    d->makeCurrent();
    check("cuModuleUnload", d->cuModuleUnload(module));
  }
}

QF_MGPU CUfunction mgpuModuleGetFunction(CUmodule module, const char *name) {
  const Driver *d = mgpuDriver("mgpuModuleGetFunction");
  CUfunction function = nullptr;
  if (!d)
    return nullptr;
  if (!module) {
    recordErrorMessage(std::string("cannot find kernel '") + name +
                       "': its GPU module was not loaded");
    return nullptr;
  }
  CUresult r = d->cuModuleGetFunction(&function, module, name);
  if (r != CUDA_SUCCESS)
    recordErrorMessage(std::string("CUDA error in cuModuleGetFunction('") +
                       name + "'): " + d->errorString(r));
  return function;
}

namespace {
/// Dynamic shared memory above the default 48 KiB must be enabled per kernel.
bool prepareSharedMemory(const Driver *d, CUfunction function, int32_t smem) {
  if (smem <= 48 * 1024)
    return true;
  int limit = 0;
  if (!check("cuDeviceGetAttribute",
             d->cuDeviceGetAttribute(
                 &limit, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN,
                 d->device)))
    return false;
  if (smem > limit) {
    recordErrorMessage("kernel needs " + std::to_string(smem) +
                       " bytes of shared memory; the device allows " +
                       std::to_string(limit));
    return false;
  }
  return check(
      "cuFuncSetAttribute",
      d->cuFuncSetAttribute(
          function, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, smem));
}
} // namespace

QF_MGPU void mgpuLaunchKernel(CUfunction function, intptr_t gridX,
                              intptr_t gridY, intptr_t gridZ, intptr_t blockX,
                              intptr_t blockY, intptr_t blockZ, int32_t smem,
                              CUstream stream, void **params, void **extra,
                              size_t /*paramsCount*/) {
  const Driver *d = mgpuDriver("mgpuLaunchKernel");
  if (!d || !function || hasError())
    return;
  if (!prepareSharedMemory(d, function, smem))
    return;
  check("cuLaunchKernel",
        d->cuLaunchKernel(function, unsigned(gridX), unsigned(gridY),
                          unsigned(gridZ), unsigned(blockX), unsigned(blockY),
                          unsigned(blockZ), unsigned(smem), stream, params,
                          extra));
}

QF_MGPU void mgpuLaunchClusterKernel(CUfunction function, intptr_t clusterX,
                                     intptr_t clusterY, intptr_t clusterZ,
                                     intptr_t gridX, intptr_t gridY,
                                     intptr_t gridZ, intptr_t blockX,
                                     intptr_t blockY, intptr_t blockZ,
                                     int32_t smem, CUstream stream,
                                     void **params, void **extra) {
  const Driver *d = mgpuDriver("mgpuLaunchClusterKernel");
  if (!d || !function || hasError())
    return;
  if (!d->cuLaunchKernelEx) {
    recordErrorMessage("thread-block clusters need a CUDA 12 driver "
                       "(cuLaunchKernelEx is missing)");
    return;
  }
  if (!prepareSharedMemory(d, function, smem))
    return;
  CUlaunchAttribute attribute;
  std::memset(&attribute, 0, sizeof(attribute));
  attribute.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
  attribute.value.clusterDim.x = unsigned(clusterX);
  attribute.value.clusterDim.y = unsigned(clusterY);
  attribute.value.clusterDim.z = unsigned(clusterZ);
  CUlaunchConfig config;
  std::memset(&config, 0, sizeof(config));
  config.gridDimX = unsigned(gridX);
  config.gridDimY = unsigned(gridY);
  config.gridDimZ = unsigned(gridZ);
  config.blockDimX = unsigned(blockX);
  config.blockDimY = unsigned(blockY);
  config.blockDimZ = unsigned(blockZ);
  config.sharedMemBytes = unsigned(smem);
  config.hStream = stream;
  config.attrs = &attribute;
  config.numAttrs = 1;
  check("cuLaunchKernelEx",
        d->cuLaunchKernelEx(&config, function, params, extra));
}

QF_MGPU CUstream mgpuStreamCreate() {
  if (currentRun)
    return currentRun->stream;
  const Driver *d = mgpuDriver("mgpuStreamCreate");
  CUstream stream = nullptr;
  if (d)
    check("cuStreamCreate", d->cuStreamCreate(&stream, CU_STREAM_NON_BLOCKING));
  return stream;
}

QF_MGPU void mgpuStreamDestroy(CUstream stream) {
  if (currentRun && stream == currentRun->stream)
    return;
  if (const Driver *d = mgpuDriver("mgpuStreamDestroy"))
    check("cuStreamDestroy", d->cuStreamDestroy_v2(stream));
}

QF_MGPU void mgpuStreamSynchronize(CUstream stream) {
  if (const Driver *d = mgpuDriver("mgpuStreamSynchronize"))
    check("cuStreamSynchronize", d->cuStreamSynchronize(stream));
}

QF_MGPU void mgpuStreamWaitEvent(CUstream stream, CUevent event) {
  if (const Driver *d = mgpuDriver("mgpuStreamWaitEvent"))
    check("cuStreamWaitEvent", d->cuStreamWaitEvent(stream, event, 0));
}

QF_MGPU CUevent mgpuEventCreate() {
  const Driver *d = mgpuDriver("mgpuEventCreate");
  CUevent event = nullptr;
  if (d)
    check("cuEventCreate", d->cuEventCreate(&event, CU_EVENT_DISABLE_TIMING));
  return event;
}

QF_MGPU void mgpuEventDestroy(CUevent event) {
  if (const Driver *d = mgpuDriver("mgpuEventDestroy"))
    check("cuEventDestroy", d->cuEventDestroy_v2(event));
}

QF_MGPU void mgpuEventSynchronize(CUevent event) {
  if (const Driver *d = mgpuDriver("mgpuEventSynchronize"))
    check("cuEventSynchronize", d->cuEventSynchronize(event));
}

QF_MGPU void mgpuEventRecord(CUevent event, CUstream stream) {
  if (const Driver *d = mgpuDriver("mgpuEventRecord"))
    check("cuEventRecord", d->cuEventRecord(event, stream));
}

QF_MGPU void *mgpuMemAlloc(uint64_t size, CUstream /*stream*/,
                           bool isHostShared) {
  const Driver *d = mgpuDriver("mgpuMemAlloc");
  if (!d || size == 0)
    return nullptr;
  if (currentRun && !isHostShared) {
    std::string err;
    uint64_t ptr = currentRun->pool->allocate(size, err);
    if (!ptr)
      recordErrorMessage(err);
    return reinterpret_cast<void *>(ptr);
  }
  CUdeviceptr ptr = 0;
  if (isHostShared)
    check("cuMemAllocManaged",
          d->cuMemAllocManaged(&ptr, size, CU_MEM_ATTACH_GLOBAL));
  else
    check("cuMemAlloc", d->cuMemAlloc_v2(&ptr, size));
  return reinterpret_cast<void *>(ptr);
}

QF_MGPU void mgpuMemFree(void *ptr, CUstream /*stream*/) {
  if (!ptr)
    return;
  if (currentRun && currentRun->pool->release(reinterpret_cast<uintptr_t>(ptr)))
    return;
  if (const Driver *d = mgpuDriver("mgpuMemFree"))
    check("cuMemFree", d->cuMemFree_v2(reinterpret_cast<CUdeviceptr>(ptr)));
}

QF_MGPU void mgpuMemcpy(void *dst, void *src, size_t size, CUstream stream) {
  if (size == 0 || hasError())
    return;
  if (const Driver *d = mgpuDriver("mgpuMemcpy"))
    check("cuMemcpyAsync",
          d->cuMemcpyAsync(reinterpret_cast<CUdeviceptr>(dst),
                           reinterpret_cast<CUdeviceptr>(src), size, stream));
}

QF_MGPU void mgpuMemset32(void *dst, uint32_t value, size_t count,
                          CUstream stream) {
  if (count == 0 || hasError())
    return;
  if (const Driver *d = mgpuDriver("mgpuMemset32"))
    check("cuMemsetD32Async",
          d->cuMemsetD32Async(reinterpret_cast<CUdeviceptr>(dst), value, count,
                              stream));
}

QF_MGPU void mgpuMemset16(void *dst, unsigned short value, size_t count,
                          CUstream stream) {
  if (count == 0 || hasError())
    return;
  if (const Driver *d = mgpuDriver("mgpuMemset16"))
    check("cuMemsetD16Async",
          d->cuMemsetD16Async(reinterpret_cast<CUdeviceptr>(dst), value, count,
                              stream));
}

QF_MGPU void mgpuSetDefaultDevice(int32_t device) {
  if (device != 0)
    recordErrorMessage("the module selects CUDA device " +
                       std::to_string(device) +
                       "; this runtime uses device 0 (choose the GPU with "
                       "CUDA_VISIBLE_DEVICES)");
}

QF_MGPU void mgpuMemHostRegister(void *ptr, uint64_t size) {
  if (const Driver *d = mgpuDriver("mgpuMemHostRegister"))
    check("cuMemHostRegister",
          d->cuMemHostRegister_v2(ptr, size, CU_MEMHOSTREGISTER_PORTABLE));
}

QF_MGPU void mgpuMemHostUnregister(void *ptr) {
  if (const Driver *d = mgpuDriver("mgpuMemHostUnregister"))
    check("cuMemHostUnregister", d->cuMemHostUnregister(ptr));
}

QF_MGPU void mgpuMemHostRegisterMemRef(int64_t rank, void *descriptor,
                                       int64_t elementSize) {
  void *start;
  size_t bytes;
  memrefExtent(rank, descriptor, elementSize, start, bytes);
  if (bytes)
    mgpuMemHostRegister(start, bytes);
}

QF_MGPU void mgpuMemHostUnregisterMemRef(int64_t rank, void *descriptor,
                                         int64_t elementSize) {
  void *start;
  size_t bytes;
  memrefExtent(rank, descriptor, elementSize, start, bytes);
  if (bytes)
    mgpuMemHostUnregister(start);
}

#undef QF_MGPU

//===----------------------------------------------------------------------===//
// The backend
//===----------------------------------------------------------------------===//

namespace {
using EntryFn = void (*)(void **);

/// Freed blocks a session keeps for reuse, at most.
constexpr size_t kPoolCacheLimit = size_t(8) << 30;

/// "1.5 GiB" for error messages.
std::string formatBytes(size_t bytes) {
  const char *units[] = {"bytes", "KiB", "MiB", "GiB", "TiB"};
  double value = double(bytes);
  int u = 0;
  while (value >= 1024 && u < 4) {
    value /= 1024;
    ++u;
  }
  char text[32];
  std::snprintf(text, sizeof(text), u ? "%.1f %s" : "%.0f %s", value, units[u]);
  return text;
}

class CUDABackend final : public Backend {
public:
  CUDABackend(std::shared_ptr<const Module> module,
              const qfm::TargetInfo &target, const Driver *d)
      : module(std::move(module)), target(target), d(d),
        pool(
            [d](size_t bytes, uint64_t &ptr, std::string &why) {
              CUdeviceptr p = 0;
              CUresult r = d->cuMemAlloc_v2(&p, bytes);
              if (r != CUDA_SUCCESS) {
                why = d->errorString(r);
                return false;
              }
              ptr = p;
              return true;
            },
            [d](uint64_t ptr) { d->cuMemFree_v2(CUdeviceptr(ptr)); },
            kPoolCacheLimit) {}

  ~CUDABackend() override {
    // Unload the code (its destructors unload the kernels) before the
    // weights go.
    d->makeCurrent();
    dropCarried();
    object.reset();
    for (CUdeviceptr p : weightPointers)
      d->cuMemFree_v2(p);
    if (context.stream)
      d->cuStreamDestroy_v2(context.stream);
    std::string ignored;
    takeError(ignored);
  }

  bool init(std::string &err) {
    if (!d->makeCurrent() || takeError(err))
      return false;
    CUresult r = d->cuStreamCreate(&context.stream, CU_STREAM_NON_BLOCKING);
    if (r != CUDA_SUCCESS) {
      err = "CUDA error in cuStreamCreate: " + d->errorString(r);
      return false;
    }
    context.pool = &pool;
    // Upload the weights once; they stay on the device.
    size_t uploaded = 0;
    for (const ArgInfo &a : module->manifest().args) {
      if (a.role != ArgRole::Weight)
        continue;
      const qfm::File::Section *s = module->file().findSection(a.section);
      CUdeviceptr ptr = 0;
      // The driver refuses empty allocations; empty tensors get a small one.
      r = d->cuMemAlloc_v2(&ptr, s->size ? s->size : 256);
      if (r != CUDA_SUCCESS) {
        err = "cannot upload weight '" + a.name + "' (" + formatBytes(s->size) +
              ", after " + formatBytes(uploaded) + " of weights; the GPU has " +
              formatBytes(cudaDeviceInfo().totalMemory) +
              "): " + d->errorString(r);
        return false;
      }
      weightPointers.push_back(ptr);
      if (s->size) {
        r = d->cuMemcpyHtoD_v2(ptr, s->data, s->size);
        if (r != CUDA_SUCCESS) {
          err = "CUDA error in cuMemcpyHtoD (weight '" + a.name +
                "'): " + d->errorString(r);
          return false;
        }
      }
      uploaded += s->size;
    }
    // Loading the object runs its constructors, which load the PTX through
    // mgpuModuleLoad*; they report failures through the recorded error.
    const qfm::File::Section *library =
        module->file().findSection(target.library);
    std::string what = "section '" + target.library + "'";
    object = SharedObject::load(library->data, library->size, what, err);
    if (!object)
      return false;
    std::string loadError;
    if (takeError(loadError)) {
      err = "loading " + what + ": " + loadError;
      return false;
    }
    void *symbol = object->symbol(target.symbol, err);
    if (!symbol)
      return false;
    entry = reinterpret_cast<EntryFn>(symbol);
    return true;
  }

  std::string description() const override {
    const CUDADeviceInfo &info = cudaDeviceInfo();
    int cc = info.computeCapability;
    return "cuda:0 (" + info.name + ", compute capability " +
           std::to_string(cc / 10) + "." + std::to_string(cc % 10) +
           ", running " + target.arch + " code)";
  }

  bool run(const std::vector<const HostTensor *> &inputs,
           std::vector<HostTensor> &outputs, std::string &err) override {
    if (!d->makeCurrent()) {
      takeError(err);
      return false;
    }
    context.error.clear();
    RunScope scope(context);
    // Every block this run takes from the pool goes back to it on every path.
    std::vector<uint64_t> inputBlocks;
    struct ReleaseInputs {
      DevicePool &pool;
      std::vector<uint64_t> &blocks;
      ~ReleaseInputs() {
        for (uint64_t b : blocks)
          pool.release(b);
      }
    } releaseInputs{pool, inputBlocks};

    MemRefArgs args;
    size_t w = 0, i = 0;
    for (const ArgInfo &a : module->manifest().args) {
      if (a.role == ArgRole::Weight) {
        args.add(reinterpret_cast<void *>(weightPointers.at(w++)), a.shape);
      } else if (a.role == ArgRole::Input) {
        size_t index = i++;
        const HostTensor *t = inputs.at(index);
        if (!t) { // kept on the device from the previous call
          args.add(carriedData(index), *carriedShape(index));
          continue;
        }
        uint64_t ptr = pool.allocate(t->byteSize(), err);
        if (!ptr)
          return false;
        inputBlocks.push_back(ptr);
        // On the session's stream, so that the kernels that read the input
        // are ordered after the copy.
        if (t->byteSize()) {
          CUresult r = d->cuMemcpyHtoDAsync_v2(CUdeviceptr(ptr), t->data(),
                                               t->byteSize(), context.stream);
          if (r != CUDA_SUCCESS) {
            err = "CUDA error in cuMemcpyHtoDAsync: " + d->errorString(r);
            return false;
          }
        }
        args.add(reinterpret_cast<void *>(ptr), t->shape);
      }
    }
    std::vector<size_t> ranks = outputRanks(module->manifest());
    if (!ranks.empty())
      args.addResults(ranks);
    entry(args.data());

    CUresult r = d->cuStreamSynchronize(context.stream);
    bool failed = !context.error.empty() || takeError(context.error);
    if (!failed && r != CUDA_SUCCESS) {
      context.error = "CUDA error in cuStreamSynchronize: " + d->errorString(r);
      failed = true;
    }
    // The entry returns blocks it took from the pool; copy them back and
    // return them (carried ones stay), also after a failure.
    const Driver *drv = d;
    bool collected = collectResults(
        args, module->manifest(), outputs,
        [drv, failed](void *dst, const void *src, size_t bytes,
                      std::string &e) {
          if (failed)
            return false;
          CUresult rc = drv->cuMemcpyDtoH_v2(
              dst, reinterpret_cast<CUdeviceptr>(src), bytes);
          if (rc != CUDA_SUCCESS)
            e = "CUDA error in cuMemcpyDtoH: " + drv->errorString(rc);
          return rc == CUDA_SUCCESS;
        },
        err);
    if (failed) {
      err = context.error;
      return false;
    }
    return collected;
  }

protected:
  void releaseBuffer(void *allocated) override {
    if (!pool.release(reinterpret_cast<uintptr_t>(allocated)))
      d->cuMemFree_v2(reinterpret_cast<CUdeviceptr>(allocated));
  }

private:
  std::shared_ptr<const Module> module;
  const qfm::TargetInfo &target;
  const Driver *d;
  DevicePool pool;
  RunContext context{nullptr, nullptr, {}};
  std::vector<CUdeviceptr> weightPointers;
  std::unique_ptr<SharedObject> object;
  EntryFn entry = nullptr;
};
} // namespace

std::unique_ptr<Backend>
rt::createCUDABackend(std::shared_ptr<const Module> module,
                      const qfm::TargetInfo &target, std::string &err) {
  std::string reason;
  const Driver *d = Driver::get(&reason);
  if (!d) {
    err = "no CUDA device is available (" + reason + ")";
    return nullptr;
  }
  if (!module->file().findSection(target.library)) {
    err = "no section '" + target.library + "'";
    return nullptr;
  }
  auto backend = std::make_unique<CUDABackend>(std::move(module), target, d);
  if (!backend->init(err))
    return nullptr;
  return backend;
}
