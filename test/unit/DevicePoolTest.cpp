//===- DevicePoolTest.cpp - The GPU memory pool, without a GPU --*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//

#include "DevicePool.h"

#include <gtest/gtest.h>

#include <map>
#include <set>

using namespace qforge::rt;

namespace {
/// A device of `capacity` bytes whose blocks are numbered addresses.
struct FakeDevice {
  size_t capacity;
  size_t used = 0;
  uint64_t next = 0x10000;
  std::map<uint64_t, size_t> blocks;
  size_t allocations = 0, frees = 0;

  DevicePool pool(size_t cacheLimit) {
    return DevicePool(
        [this](size_t bytes, uint64_t &ptr, std::string &why) {
          if (used + bytes > capacity) {
            why = "out of memory";
            return false;
          }
          ptr = next;
          next += bytes + 0x10000;
          blocks[ptr] = bytes;
          used += bytes;
          ++allocations;
          return true;
        },
        [this](uint64_t ptr) {
          auto it = blocks.find(ptr);
          ASSERT_NE(it, blocks.end()) << "freed a block twice or never made";
          used -= it->second;
          blocks.erase(it);
          ++frees;
        },
        cacheLimit);
  }
};
} // namespace

TEST(DevicePoolTest, SteadyStateAsksTheDriverForNothing) {
  FakeDevice device{1 << 30};
  DevicePool pool = device.pool(1 << 30);
  std::string err;
  // One "forward pass": activations of a few sizes, freed in another order.
  auto pass = [&] {
    std::vector<uint64_t> live;
    for (size_t bytes : {4096u, 1000u, 4096u, 70000u, 12u})
      live.push_back(pool.allocate(bytes, err));
    for (uint64_t p : live) {
      ASSERT_NE(p, 0u) << err;
      EXPECT_EQ(p % 256, 0u);
    }
    EXPECT_EQ(std::set<uint64_t>(live.begin(), live.end()).size(), live.size())
        << "two live allocations share a block";
    for (size_t i = live.size(); i-- > 0;)
      EXPECT_TRUE(pool.release(live[i]));
  };
  pass();
  size_t first = device.allocations;
  EXPECT_EQ(first, 5u);
  for (int i = 0; i < 10; ++i)
    pass();
  EXPECT_EQ(device.allocations, first);
  EXPECT_EQ(pool.stats().reuses, 50u);
  EXPECT_EQ(pool.stats().liveBytes, 0u);
}

TEST(DevicePoolTest, BlocksHoldTheirSize) {
  FakeDevice device{1 << 30};
  DevicePool pool = device.pool(1 << 30);
  std::string err;
  for (size_t bytes : {1u, 255u, 256u, 257u, 5000u, 1u << 20, (1u << 20) + 1}) {
    uint64_t p = pool.allocate(bytes, err);
    ASSERT_NE(p, 0u);
    EXPECT_GE(device.blocks.at(p), bytes);
    EXPECT_LT(device.blocks.at(p), 2 * bytes + 256);
    pool.release(p);
  }
}

TEST(DevicePoolTest, OutOfMemoryGivesTheCacheBackFirst) {
  FakeDevice device{3 << 20};
  DevicePool pool = device.pool(size_t(1) << 30);
  std::string err;
  uint64_t a = pool.allocate(2 << 20, err);
  ASSERT_NE(a, 0u);
  pool.release(a); // cached, still held from the device
  EXPECT_EQ(device.used, size_t(2) << 20);
  // A different class does not fit beside the cached block.
  uint64_t b = pool.allocate(1 << 20, err);
  ASSERT_NE(b, 0u) << err;
  uint64_t c = pool.allocate(1 << 20, err);
  ASSERT_NE(c, 0u) << err;
  EXPECT_EQ(device.frees, 1u);
  // Nothing left to give back: a clear error.
  EXPECT_EQ(pool.allocate(2 << 20, err), 0u);
  EXPECT_NE(err.find("cannot allocate 2097152 bytes of GPU memory"),
            std::string::npos)
      << err;
  EXPECT_NE(err.find("out of memory"), std::string::npos) << err;
}

TEST(DevicePoolTest, CacheLimitAndOwnership) {
  FakeDevice device{1 << 30};
  {
    DevicePool pool = device.pool(4096);
    std::string err;
    uint64_t a = pool.allocate(4096, err), b = pool.allocate(4096, err);
    EXPECT_TRUE(pool.owns(a));
    EXPECT_FALSE(pool.release(a + 256));
    EXPECT_TRUE(pool.release(a));
    EXPECT_FALSE(pool.release(a)) << "a block released twice";
    EXPECT_TRUE(pool.release(b)); // over the limit: back to the driver
    EXPECT_EQ(device.frees, 1u);
    EXPECT_EQ(pool.cachedBytes(), 4096u);
    uint64_t live = pool.allocate(100, err);
    EXPECT_NE(live, 0u);
  }
  // The pool gave everything back, cached and live.
  EXPECT_TRUE(device.blocks.empty());
}
