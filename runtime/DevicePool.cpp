//===- DevicePool.cpp - GPU memory pool of one session ----------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//

#include "DevicePool.h"

using namespace qforge::rt;

DevicePool::DevicePool(AllocateFn allocate, FreeFn free, size_t cacheLimit)
    : allocateFn(std::move(allocate)), freeFn(std::move(free)),
      cache(cacheLimit) {}

DevicePool::~DevicePool() {
  trim();
  for (const auto &block : live)
    freeFn(block.first);
}

static uint64_t toHandle(void *p) { return reinterpret_cast<uintptr_t>(p); }
static void *fromHandle(uint64_t h) {
  return reinterpret_cast<void *>(static_cast<uintptr_t>(h));
}

uint64_t DevicePool::allocate(size_t bytes, std::string &err) {
  // The driver's blocks are 256-byte aligned; so are all classes from 256.
  int c = BlockCache::sizeClass(bytes < 256 ? 256 : bytes);
  uint64_t ptr = toHandle(cache.take(c));
  if (ptr) {
    ++counters.reuses;
  } else {
    std::string why;
    size_t size = BlockCache::classBytes(c);
    if (!allocateFn(size, ptr, why)) {
      // Out of memory, perhaps only because of what the cache holds.
      size_t held = cache.cachedBytes();
      trim();
      if (!held || !allocateFn(size, ptr, why)) {
        err = "cannot allocate " + std::to_string(bytes) +
              " bytes of GPU memory (" + std::to_string(counters.liveBytes) +
              " bytes of activations live): " + why;
        return 0;
      }
    }
    ++counters.driverAllocations;
  }
  live.emplace(ptr, c);
  counters.liveBytes += BlockCache::classBytes(c);
  size_t held = counters.liveBytes + cache.cachedBytes();
  if (held > counters.peakBytes)
    counters.peakBytes = held;
  return ptr;
}

bool DevicePool::release(uint64_t ptr) {
  auto it = live.find(ptr);
  if (it == live.end())
    return false;
  int c = it->second;
  live.erase(it);
  counters.liveBytes -= BlockCache::classBytes(c);
  if (!cache.keep(c, fromHandle(ptr)))
    freeFn(ptr);
  return true;
}

void DevicePool::trim() {
  for (void *p : cache.drain())
    freeFn(toHandle(p));
}
