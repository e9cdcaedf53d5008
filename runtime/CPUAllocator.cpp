//===- CPUAllocator.cpp - Buffer pool for generated CPU code ----*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// Generated CPU code allocates its activations and scratch buffers through
// MLIR's generic allocation functions (finalize-memref-to-llvm with
// use-generic-functions), which this library defines. A forward pass
// allocates and frees the same sizes call after call; with malloc, buffers
// above glibc's mmap threshold are mapped and unmapped every time, and the
// page faults of touching fresh pages took about 45% of a 256-token forward
// of the bundled model. The pool keeps freed blocks by size class and hands
// them out again, so a steady state touches no new pages.
//
//===----------------------------------------------------------------------===//

#include "BlockCache.h"

#include "qforge/Runtime/Runtime.h"

#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <vector>

namespace {

/// Every block starts 64 bytes (a cache line, and the alignment the kernels
/// ask for) after its header, which holds the size class and the offset back
/// to the malloc'd base.
constexpr size_t kHeader = 64;
constexpr size_t kAlign = 64;
/// Freed bytes kept for reuse, at most.
constexpr size_t kCacheLimit = size_t(2) << 30;

using qforge::rt::BlockCache;

struct Header {
  uint32_t sizeClass;
  uint32_t offset; // from the malloc'd base to the header
};

class Pool {
public:
  void *allocate(size_t size, size_t alignment) {
    if (alignment > kAlign)
      return allocateOverAligned(size, alignment);
    int c = BlockCache::sizeClass(size);
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (void *p = cache.take(c))
        return p;
    }
    void *base = std::malloc(BlockCache::classBytes(c) + kHeader + kAlign);
    if (!base)
      return nullptr;
    uintptr_t user =
        (reinterpret_cast<uintptr_t>(base) + kHeader + kAlign - 1) &
        ~uintptr_t(kAlign - 1);
    Header *h = reinterpret_cast<Header *>(user) - 1;
    h->sizeClass = uint32_t(c);
    h->offset =
        uint32_t(user - sizeof(Header) - reinterpret_cast<uintptr_t>(base));
    return reinterpret_cast<void *>(user);
  }

  void release(void *p) {
    if (!p)
      return;
    Header *h = static_cast<Header *>(p) - 1;
    if (h->sizeClass == kOverAligned) {
      std::free(reinterpret_cast<char *>(h) - h->offset);
      return;
    }
    int c = int(h->sizeClass);
    {
      std::lock_guard<std::mutex> lock(mutex);
      if (cache.keep(c, p))
        return;
    }
    std::free(reinterpret_cast<char *>(h) - h->offset);
  }

private:
  static constexpr uint32_t kOverAligned = ~0u;

  void *allocateOverAligned(size_t size, size_t alignment) {
    void *base = std::malloc(size + sizeof(Header) + alignment);
    if (!base)
      return nullptr;
    uintptr_t user =
        (reinterpret_cast<uintptr_t>(base) + sizeof(Header) + alignment - 1) &
        ~uintptr_t(alignment - 1);
    Header *h = reinterpret_cast<Header *>(user) - 1;
    h->sizeClass = kOverAligned;
    h->offset =
        uint32_t(user - sizeof(Header) - reinterpret_cast<uintptr_t>(base));
    return reinterpret_cast<void *>(user);
  }

  std::mutex mutex;
  BlockCache cache{kCacheLimit};
};

Pool &pool() {
  // Never destroyed: generated code may free buffers during exit.
  static Pool *p = new Pool;
  return *p;
}

} // namespace

void *qforge::rt::cpuAllocate(size_t size) { return pool().allocate(size, 16); }
void qforge::rt::cpuFree(void *p) { pool().release(p); }

// MLIR's generic allocation functions, called by generated CPU code.
extern "C" {
__attribute__((visibility("default"))) void *
_mlir_memref_to_llvm_alloc(uint64_t size) {
  return pool().allocate(size, 16);
}
__attribute__((visibility("default"))) void *
_mlir_memref_to_llvm_aligned_alloc(uint64_t alignment, uint64_t size) {
  return pool().allocate(size, alignment);
}
__attribute__((visibility("default"))) void _mlir_memref_to_llvm_free(void *p) {
  pool().release(p);
}
}
