//===- CPUBackend.cpp - Running a module's CPU code -------------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
// Loads the `code.cpu` shared object of a module from memory and calls its
// entry point with descriptors over the mapped weights, the caller's inputs
// and freshly allocated outputs.
//
//===----------------------------------------------------------------------===//

#include "qforge/Runtime/Runtime.h"

#include <atomic>
#include <cstdlib>
#include <cstring>

using namespace qforge;
using namespace qforge::rt;
using qfm::ArgInfo;
using qfm::ArgRole;

namespace {
using EntryFn = void (*)(void **);
using SetThreadsFn = void (*)(int);

std::atomic<int> requestedThreads{0};

class CPUBackend final : public Backend {
public:
  CPUBackend(std::shared_ptr<const Module> module,
             const qfm::TargetInfo &target,
             std::unique_ptr<SharedObject> object, EntryFn entry,
             SetThreadsFn setThreads)
      : module(std::move(module)), target(target), object(std::move(object)),
        entry(entry), setThreads(setThreads) {}
  ~CPUBackend() override { dropCarried(); }

  std::string description() const override {
    return "cpu (" +
           (target.cpu.empty() ? std::string("generic") : target.cpu) + ")";
  }

  bool run(const std::vector<const HostTensor *> &inputs,
           std::vector<HostTensor> &outputs, std::string &err) override {
    const qfm::Manifest &m = module->manifest();
    MemRefArgs args;
    size_t nextInput = 0;
    for (const ArgInfo &a : m.args) {
      if (a.role == ArgRole::Weight) {
        args.add(
            const_cast<uint8_t *>(module->file().findSection(a.section)->data),
            a.shape);
      } else if (a.role == ArgRole::Input) {
        size_t index = nextInput++;
        if (const HostTensor *t = inputs.at(index))
          args.add(const_cast<void *>(t->data()), t->shape);
        else
          args.add(carriedData(index), *carriedShape(index));
      }
    }
    std::vector<size_t> ranks = outputRanks(m);
    if (!ranks.empty())
      args.addResults(ranks);
    // OpenMP's thread count is per calling thread: set it before each call.
    if (setThreads && requestedThreads.load() > 0)
      setThreads(requestedThreads.load());
    entry(args.data());
    return collectResults(
        args, m, outputs,
        [](void *dst, const void *src, size_t bytes, std::string &) {
          std::memcpy(dst, src, bytes);
          return true;
        },
        err);
  }

protected:
  void releaseBuffer(void *allocated) override {
    // Modules from before the buffer pool return malloc'd buffers.
    if (target.buffers == "runtime-pool")
      cpuFree(allocated);
    else
      std::free(allocated);
  }

private:
  std::shared_ptr<const Module> module;
  const qfm::TargetInfo &target;
  std::unique_ptr<SharedObject> object;
  EntryFn entry;
  SetThreadsFn setThreads;
};
} // namespace

void rt::setCPUThreads(int threads) { requestedThreads = threads; }
int rt::cpuThreads() { return requestedThreads.load(); }

std::unique_ptr<Backend>
rt::createCPUBackend(std::shared_ptr<const Module> module,
                     const qfm::TargetInfo &target, std::string &err) {
  std::vector<std::string> missing = missingCPUFeatures(target);
  if (!missing.empty()) {
    err = "module needs CPU feature '" + missing.front() +
          "', which this CPU lacks";
    return nullptr;
  }
  const qfm::File::Section *library =
      module->file().findSection(target.library);
  if (!library) {
    err = "no section '" + target.library + "'";
    return nullptr;
  }
  std::unique_ptr<SharedObject> object = SharedObject::load(
      library->data, library->size, "section '" + target.library + "'", err);
  if (!object)
    return nullptr;
  void *symbol = object->symbol(target.symbol, err);
  if (!symbol)
    return nullptr;
  // Present when the code has parallel loops (libomp is then a dependency).
  std::string ignored;
  void *setThreads = object->symbol("omp_set_num_threads", ignored);
  return std::make_unique<CPUBackend>(
      std::move(module), target, std::move(object),
      reinterpret_cast<EntryFn>(symbol),
      reinterpret_cast<SetThreadsFn>(setThreads));
}
