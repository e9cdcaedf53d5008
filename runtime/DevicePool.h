//===- DevicePool.h - GPU memory pool of one session ------------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// The activations and scratch buffers generated GPU host code allocates
// (mgpuMemAlloc) come from the pool of the session running it: freed blocks
// are kept by size class (BlockCache) and handed out again, so after the first
// call a forward pass asks the driver for no memory. All the session's work
// runs on its one stream, so a block freed by one kernel's host code may be
// handed to the next allocation at once: stream order puts every later use
// after every earlier one. Blocks are never shared across sessions.
//
// The pool knows the driver only through the two functions it is given,
// which keeps it testable without a GPU.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_RUNTIME_DEVICEPOOL_H
#define QFORGE_RUNTIME_DEVICEPOOL_H

#include "BlockCache.h"

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <unordered_map>

namespace qforge {
namespace rt {

class DevicePool {
public:
  /// Allocates `bytes` of device memory into `ptr`; on failure returns false
  /// with the driver's reason in `why`.
  using AllocateFn =
      std::function<bool(size_t bytes, uint64_t &ptr, std::string &why)>;
  using FreeFn = std::function<void(uint64_t ptr)>;

  DevicePool(AllocateFn allocate, FreeFn free, size_t cacheLimit);
  ~DevicePool();
  DevicePool(const DevicePool &) = delete;
  DevicePool &operator=(const DevicePool &) = delete;

  /// A block of at least `bytes` (at least 256-byte aligned, as the driver's
  /// are), or 0 with one line in `err`. When the driver is out of memory the
  /// cached blocks are given back to it and the allocation tried once more.
  uint64_t allocate(size_t bytes, std::string &err);
  /// Whether `ptr` is a live block of this pool.
  bool owns(uint64_t ptr) const { return live.count(ptr) != 0; }
  /// Returns a block to the pool; false if `ptr` is not one of its live blocks.
  bool release(uint64_t ptr);
  /// Gives every cached block back to the driver.
  void trim();

  struct Stats {
    size_t driverAllocations = 0; ///< blocks asked of the driver
    size_t reuses = 0;            ///< allocations served from the cache
    size_t liveBytes = 0;         ///< in blocks handed out
    size_t peakBytes = 0;         ///< live + cached, at most
  };
  const Stats &stats() const { return counters; }
  size_t cachedBytes() const { return cache.cachedBytes(); }

private:
  AllocateFn allocateFn;
  FreeFn freeFn;
  BlockCache cache;
  std::unordered_map<uint64_t, int> live; // block -> size class
  Stats counters;
};

} // namespace rt
} // namespace qforge

#endif // QFORGE_RUNTIME_DEVICEPOOL_H
