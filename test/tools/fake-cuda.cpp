//===- fake-cuda.cpp - A CUDA driver stand-in for tests ---------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// libcuda.so.1 for machines without a GPU: the driver entry points the
// runtime opens, over host memory. Kernels are not run (a launch is counted
// and does nothing), so outputs are meaningless; what the tests check is the
// runtime's side: how often it allocates, copies and creates streams, and the
// errors it reports when the device is missing, too old or out of memory.
// Put its folder first in LD_LIBRARY_PATH. Set by the environment:
//   QF_FAKE_CUDA_DEVICES  devices (default 1; 0: cuInit reports no device)
//   QF_FAKE_CUDA_CC       compute capability, e.g. 80 (default 90)
//   QF_FAKE_CUDA_MEMORY   device memory in bytes (default 1 GiB)
//   QF_FAKE_CUDA_FAIL_LAUNCH  the N-th launch (from 1) fails with an illegal
//                             address, as a faulting kernel does
//   QF_FAKE_CUDA_LOG      file that receives the counters at exit
//
//===----------------------------------------------------------------------===//

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>

namespace {
using CUresult = int;
constexpr CUresult kSuccess = 0, kInvalidValue = 1, kOutOfMemory = 2,
                   kNoDevice = 100, kIllegalAddress = 700;

long envNumber(const char *name, long fallback) {
  const char *v = std::getenv(name);
  return v && *v ? std::strtol(v, nullptr, 10) : fallback;
}

struct State {
  std::mutex mutex;
  std::map<uintptr_t, size_t> blocks;
  size_t used = 0, peak = 0;
  size_t capacity = size_t(envNumber("QF_FAKE_CUDA_MEMORY", 1L << 30));
  long failLaunch = envNumber("QF_FAKE_CUDA_FAIL_LAUNCH", 0);
  // Counters written at exit.
  long allocations = 0, frees = 0, streams = 0, launches = 0, modules = 0;
  size_t hostToDevice = 0, deviceToHost = 0;

  void writeLog() {
    const char *path = std::getenv("QF_FAKE_CUDA_LOG");
    if (!path)
      return;
    if (FILE *f = std::fopen(path, "a")) {
      std::fprintf(f,
                   "allocations %ld\nfrees %ld\nlive_blocks %zu\n"
                   "peak_bytes %zu\nstreams %ld\nlaunches %ld\nmodules %ld\n"
                   "htod_bytes %zu\ndtoh_bytes %zu\n",
                   allocations, frees, blocks.size(), peak, streams, launches,
                   modules, hostToDevice, deviceToHost);
      std::fclose(f);
    }
  }
};

// Never destroyed: the runtime may free memory from static destructors.
State &state() {
  static State *s = new State;
  return *s;
}

__attribute__((destructor)) void writeLogAtExit() { state().writeLog(); }

CUresult allocate(unsigned long long *ptr, size_t bytes) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (bytes == 0)
    return kInvalidValue;
  if (s.used + bytes > s.capacity)
    return kOutOfMemory;
  void *p = std::calloc(1, bytes);
  if (!p)
    return kOutOfMemory;
  *ptr = reinterpret_cast<uintptr_t>(p);
  s.blocks[*ptr] = bytes;
  s.used += bytes;
  if (s.used > s.peak)
    s.peak = s.used;
  ++s.allocations;
  return kSuccess;
}

int dummy[4];
} // namespace

#define FAKE extern "C" __attribute__((visibility("default"))) CUresult

FAKE cuInit(unsigned) {
  return envNumber("QF_FAKE_CUDA_DEVICES", 1) > 0 ? kSuccess : kNoDevice;
}
FAKE cuDeviceGetCount(int *count) {
  *count = int(envNumber("QF_FAKE_CUDA_DEVICES", 1));
  return kSuccess;
}
FAKE cuDeviceGet(int *device, int ordinal) {
  *device = ordinal;
  return kSuccess;
}
FAKE cuDeviceGetAttribute(int *value, int attribute, int) {
  long cc = envNumber("QF_FAKE_CUDA_CC", 90);
  switch (attribute) {
  case 16: // multiprocessors
    *value = 4;
    return kSuccess;
  case 75:
    *value = int(cc / 10);
    return kSuccess;
  case 76:
    *value = int(cc % 10);
    return kSuccess;
  case 97: // shared memory per block, opt-in
    *value = 227 * 1024;
    return kSuccess;
  }
  return kInvalidValue;
}
FAKE cuDeviceGetName(char *name, int length, int) {
  std::snprintf(name, size_t(length), "qforge fake GPU");
  return kSuccess;
}
FAKE cuDeviceTotalMem_v2(size_t *bytes, int) {
  *bytes = state().capacity;
  return kSuccess;
}
FAKE cuDevicePrimaryCtxRetain(void **context, int) {
  *context = &dummy[0];
  return kSuccess;
}
FAKE cuCtxSetCurrent(void *) { return kSuccess; }
FAKE cuCtxSynchronize() { return kSuccess; }
FAKE cuMemAlloc_v2(unsigned long long *ptr, size_t bytes) {
  return allocate(ptr, bytes);
}
FAKE cuMemAllocManaged(unsigned long long *ptr, size_t bytes, unsigned) {
  return allocate(ptr, bytes);
}
FAKE cuMemFree_v2(unsigned long long ptr) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  auto it = s.blocks.find(uintptr_t(ptr));
  if (it == s.blocks.end())
    return kInvalidValue;
  s.used -= it->second;
  s.blocks.erase(it);
  std::free(reinterpret_cast<void *>(uintptr_t(ptr)));
  ++s.frees;
  return kSuccess;
}
FAKE cuMemcpyHtoD_v2(unsigned long long dst, const void *src, size_t bytes) {
  std::memcpy(reinterpret_cast<void *>(uintptr_t(dst)), src, bytes);
  std::lock_guard<std::mutex> lock(state().mutex);
  state().hostToDevice += bytes;
  return kSuccess;
}
FAKE cuMemcpyHtoDAsync_v2(unsigned long long dst, const void *src, size_t bytes,
                          void *) {
  return cuMemcpyHtoD_v2(dst, src, bytes);
}
FAKE cuMemcpyDtoH_v2(void *dst, unsigned long long src, size_t bytes) {
  std::memcpy(dst, reinterpret_cast<void *>(uintptr_t(src)), bytes);
  std::lock_guard<std::mutex> lock(state().mutex);
  state().deviceToHost += bytes;
  return kSuccess;
}
FAKE cuMemcpy(unsigned long long dst, unsigned long long src, size_t bytes) {
  std::memmove(reinterpret_cast<void *>(uintptr_t(dst)),
               reinterpret_cast<void *>(uintptr_t(src)), bytes);
  return kSuccess;
}
FAKE cuMemcpyAsync(unsigned long long dst, unsigned long long src, size_t bytes,
                   void *) {
  return cuMemcpy(dst, src, bytes);
}
FAKE cuMemsetD32_v2(unsigned long long dst, unsigned value, size_t count) {
  auto *p = reinterpret_cast<uint32_t *>(uintptr_t(dst));
  for (size_t i = 0; i < count; ++i)
    p[i] = value;
  return kSuccess;
}
FAKE cuMemsetD32Async(unsigned long long dst, unsigned value, size_t count,
                      void *) {
  return cuMemsetD32_v2(dst, value, count);
}
FAKE cuMemsetD16Async(unsigned long long dst, unsigned short value,
                      size_t count, void *) {
  auto *p = reinterpret_cast<uint16_t *>(uintptr_t(dst));
  for (size_t i = 0; i < count; ++i)
    p[i] = value;
  return kSuccess;
}
FAKE cuMemHostRegister_v2(void *, size_t, unsigned) { return kSuccess; }
FAKE cuMemHostUnregister(void *) { return kSuccess; }
FAKE cuModuleLoadData(void **module, const void *) {
  *module = &dummy[1];
  std::lock_guard<std::mutex> lock(state().mutex);
  ++state().modules;
  return kSuccess;
}
FAKE cuModuleLoadDataEx(void **module, const void *image, unsigned, int *,
                        void **) {
  return cuModuleLoadData(module, image);
}
FAKE cuModuleUnload(void *) { return kSuccess; }
FAKE cuModuleGetFunction(void **function, void *, const char *) {
  *function = &dummy[2];
  return kSuccess;
}
FAKE cuFuncSetAttribute(void *, int, int) { return kSuccess; }
FAKE cuLaunchKernel(void *, unsigned, unsigned, unsigned, unsigned, unsigned,
                    unsigned, unsigned, void *, void **, void **) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  ++s.launches;
  return s.launches == s.failLaunch ? kIllegalAddress : kSuccess;
}
FAKE cuStreamCreate(void **stream, unsigned) {
  State &s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  ++s.streams;
  *stream = new int(0);
  return kSuccess;
}
FAKE cuStreamSynchronize(void *) { return kSuccess; }
FAKE cuStreamDestroy_v2(void *stream) {
  delete static_cast<int *>(stream);
  return kSuccess;
}
FAKE cuStreamWaitEvent(void *, void *, unsigned) { return kSuccess; }
FAKE cuEventCreate(void **event, unsigned) {
  *event = &dummy[3];
  return kSuccess;
}
FAKE cuEventRecord(void *, void *) { return kSuccess; }
FAKE cuEventSynchronize(void *) { return kSuccess; }
FAKE cuEventDestroy_v2(void *) { return kSuccess; }
namespace {
struct ErrorText {
  CUresult code;
  const char *name, *text;
};
constexpr ErrorText kErrors[] = {
    {kInvalidValue, "CUDA_ERROR_INVALID_VALUE", "invalid argument"},
    {kOutOfMemory, "CUDA_ERROR_OUT_OF_MEMORY", "out of memory"},
    {kNoDevice, "CUDA_ERROR_NO_DEVICE", "no CUDA-capable device is detected"},
    {kIllegalAddress, "CUDA_ERROR_ILLEGAL_ADDRESS",
     "an illegal memory access was encountered"},
};
const ErrorText *findError(CUresult error) {
  for (const ErrorText &e : kErrors)
    if (e.code == error)
      return &e;
  return nullptr;
}
} // namespace

FAKE cuGetErrorString(CUresult error, const char **text) {
  const ErrorText *e = findError(error);
  if (!e)
    return kInvalidValue;
  *text = e->text;
  return kSuccess;
}
FAKE cuGetErrorName(CUresult error, const char **text) {
  const ErrorText *e = findError(error);
  if (!e)
    return kInvalidValue;
  *text = e->name;
  return kSuccess;
}
