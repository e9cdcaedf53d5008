//===- BlockCache.h - Freed blocks kept by size class -----------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// The part the CPU buffer pool (CPUAllocator.cpp) and the GPU memory pool
// (DevicePool.h) share: sizes rounded up to power-of-two classes from 64 bytes,
// and per class a list of freed blocks handed out again, up to a limit on the
// bytes kept. A forward pass allocates and frees the same sizes call after
// call, so a steady state asks the system (malloc, cuMemAlloc) for nothing.
// Not thread-safe; the owner locks.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_RUNTIME_BLOCKCACHE_H
#define QFORGE_RUNTIME_BLOCKCACHE_H

#include <cstddef>
#include <cstdint>
#include <vector>

namespace qforge {
namespace rt {

class BlockCache {
public:
  static constexpr int kClasses = 48;

  explicit BlockCache(size_t limit) : limit(limit) {}

  static size_t classBytes(int c) { return size_t(64) << c; }
  /// The smallest class that holds `size` bytes (the largest for any more).
  static int sizeClass(size_t size) {
    int c = 0;
    while (c + 1 < kClasses && classBytes(c) < size)
      ++c;
    return c;
  }

  /// A kept block of class `c`, or null.
  void *take(int c) {
    if (blocks[c].empty())
      return nullptr;
    void *p = blocks[c].back();
    blocks[c].pop_back();
    cached -= classBytes(c);
    return p;
  }

  /// Keeps `p` (of class `c`) for reuse; false, and not kept, when that would
  /// exceed the limit.
  bool keep(int c, void *p) {
    if (cached + classBytes(c) > limit)
      return false;
    blocks[c].push_back(p);
    cached += classBytes(c);
    return true;
  }

  /// Empties the cache and returns what it held.
  std::vector<void *> drain() {
    std::vector<void *> all;
    for (std::vector<void *> &list : blocks) {
      all.insert(all.end(), list.begin(), list.end());
      list.clear();
    }
    cached = 0;
    return all;
  }

  size_t cachedBytes() const { return cached; }

private:
  size_t limit;
  size_t cached = 0;
  std::vector<void *> blocks[kClasses];
};

} // namespace rt
} // namespace qforge

#endif // QFORGE_RUNTIME_BLOCKCACHE_H
