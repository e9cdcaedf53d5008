//===- concurrent-sessions.cpp - One module, several threads --------------===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
//   concurrent-sessions MODULE.qfm THREADS CALLS OMP_THREADS [NAME=FILE ...]
//
// Loads MODULE once, runs it serially once for the reference outputs, then
// starts THREADS threads that each create their own Session on the shared
// Module and call it CALLS times on the same inputs (missing inputs are
// filled with a deterministic pattern; dynamic dimensions become 4), each
// call running its parallel loops on OMP_THREADS threads. Every
// output of every call must equal the reference bit for bit. Prints one line
// and exits 0 when they all do. Built normally for the lit test and with
// ThreadSanitizer by scripts/test.sh.
//
//===----------------------------------------------------------------------===//

#include "qforge/Runtime/Runtime.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

using namespace qforge;
using namespace qforge::rt;

namespace {
[[noreturn]] void die(const std::string &message) {
  std::fprintf(stderr, "concurrent-sessions: error: %s\n", message.c_str());
  std::exit(1);
}

/// A deterministic input: small integers for integer inputs (token ids),
/// values in [-1, 1) for float ones.
HostTensor patternInput(const qfm::ArgInfo &arg) {
  std::vector<int64_t> shape = arg.shape;
  for (int64_t &d : shape)
    d = d < 0 ? 4 : d;
  HostTensor t(arg.dtype, shape);
  int64_t n = t.numElements();
  for (int64_t i = 0; i < n; ++i) {
    switch (arg.dtype) {
    case qfm::DType::F32:
      t.dataAs<float>()[i] = float((i * 37) % 64) / 32.0f - 1.0f;
      break;
    case qfm::DType::I64:
      t.dataAs<int64_t>()[i] = (i * 37) % 251;
      break;
    case qfm::DType::I32:
      t.dataAs<int32_t>()[i] = int32_t((i * 37) % 251);
      break;
    default:
      die("input '" + arg.name + "': pass it as NAME=FILE");
    }
  }
  return t;
}

bool sameOutputs(const TensorMap &a, const TensorMap &b) {
  if (a.size() != b.size())
    return false;
  for (const auto &[name, t] : a) {
    auto it = b.find(name);
    if (it == b.end() || it->second.shape != t.shape ||
        it->second.byteSize() != t.byteSize() ||
        std::memcmp(it->second.data(), t.data(), t.byteSize()) != 0)
      return false;
  }
  return true;
}
} // namespace

int main(int argc, char **argv) {
  if (argc < 5)
    die("usage: concurrent-sessions MODULE.qfm THREADS CALLS OMP_THREADS "
        "[NAME=FILE ...]");
  int threads = std::atoi(argv[2]), calls = std::atoi(argv[3]);
  int ompThreads = std::atoi(argv[4]);
  if (threads < 1 || calls < 1 || ompThreads < 1)
    die("THREADS, CALLS and OMP_THREADS must be positive");
  std::string err;
  std::shared_ptr<Module> module = Module::load(argv[1], err);
  if (!module)
    die(err);

  TensorMap inputs;
  for (int i = 5; i < argc; ++i) {
    std::string spec = argv[i];
    size_t eq = spec.find('=');
    if (eq == std::string::npos)
      die("expected NAME=FILE, got '" + spec + "'");
    HostTensor t;
    if (!readTensorFile(spec.substr(eq + 1), t, err))
      die(err);
    inputs[spec.substr(0, eq)] = std::move(t);
  }
  for (const qfm::ArgInfo *arg : module->inputs())
    if (!inputs.count(arg->name))
      inputs[arg->name] = patternInput(*arg);

  setCPUThreads(ompThreads);
  std::unique_ptr<Session> serial =
      Session::create(module, DeviceKind::CPU, err);
  if (!serial)
    die(err);
  TensorMap reference;
  if (!serial->run(inputs, reference, err))
    die(err);

  std::atomic<int> mismatches{0}, failures{0};
  std::vector<std::string> errors(threads);
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::string threadErr;
      std::unique_ptr<Session> session =
          Session::create(module, DeviceKind::CPU, threadErr);
      for (int c = 0; session && c < calls; ++c) {
        TensorMap outputs;
        if (!session->run(inputs, outputs, threadErr))
          break;
        if (!sameOutputs(reference, outputs))
          ++mismatches;
      }
      if (!threadErr.empty()) {
        errors[t] = threadErr;
        ++failures;
      }
    });
  }
  for (std::thread &t : pool)
    t.join();
  for (const std::string &e : errors)
    if (!e.empty())
      die(e);
  if (mismatches)
    die(std::to_string(mismatches.load()) + " of " +
        std::to_string(threads * calls) + " calls differ from the serial run");
  std::printf("concurrent-sessions: %d threads x %d calls (%d OpenMP threads "
              "each): all %zu outputs equal the serial run\n",
              threads, calls, ompThreads, reference.size());
  return 0;
}
