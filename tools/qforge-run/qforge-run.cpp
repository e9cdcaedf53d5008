//===- qforge-run.cpp - Run a compiled qforge module ------------*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//
//
//   qforge-run model.qfm --input x=x.npy --output y.npy [--device
//   auto|cpu|cuda] qforge-run model.qfm info
//
// Every failure prints one line, "qforge-run: error: ...", and exits with
// status 1; output files are written whole or not at all.
//
// Subcommands are rows of the `kCommands` table: a name, a summary, the
// options it accepts and the function that runs it.
//
//===----------------------------------------------------------------------===//

#include "qforge/Runtime/LanguageModel.h"
#include "qforge/Runtime/Runtime.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <sys/resource.h>
#include <unistd.h>
#include <vector>

using namespace qforge;
using namespace qforge::rt;

namespace {

/// Any failure: main prints it as one line and exits with status 1.
struct Failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

//===----------------------------------------------------------------------===//
// Command-line parsing
//===----------------------------------------------------------------------===//

struct OptionSpec {
  const char *name;    ///< Without the leading "--".
  const char *metavar; ///< Null for a flag without a value.
  bool repeatable;
  const char *help;
};

/// The parsed options of one subcommand.
class Options {
public:
  bool has(const std::string &name) const { return values.count(name) != 0; }
  const std::vector<std::string> &all(const std::string &name) const {
    static const std::vector<std::string> none;
    auto it = values.find(name);
    return it == values.end() ? none : it->second;
  }
  std::string get(const std::string &name, const std::string &fallback) const {
    auto it = values.find(name);
    return it == values.end() ? fallback : it->second.back();
  }

  std::map<std::string, std::vector<std::string>> values;
  std::vector<std::string> positionals;
};

struct Command;
using CommandFn = int (*)(const Command &, const std::string &modulePath,
                          const Options &);

struct Command {
  const char *name;
  const char *summary;
  std::vector<OptionSpec> options;
  CommandFn run;
};

Options parseOptions(const Command &command,
                     const std::vector<std::string> &args) {
  Options result;
  bool optionsEnded = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string &arg = args[i];
    if (arg == "--" && !optionsEnded) {
      optionsEnded = true;
      continue;
    }
    if (optionsEnded || arg.size() < 2 || arg[0] != '-') {
      result.positionals.push_back(arg);
      continue;
    }
    std::string name = arg.substr(arg[1] == '-' ? 2 : 1);
    std::string value;
    bool inlineValue = false;
    size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      inlineValue = true;
    }
    const OptionSpec *spec = nullptr;
    for (const OptionSpec &o : command.options)
      if (name == o.name)
        spec = &o;
    if (!spec)
      throw Failure("unknown option '" + arg + "' for '" + command.name +
                    "' (see qforge-run --help)");
    if (spec->metavar && !inlineValue) {
      if (i + 1 >= args.size())
        throw Failure("option '--" + name + "' needs a value (" +
                      spec->metavar + ")");
      value = args[++i];
    } else if (!spec->metavar && inlineValue) {
      throw Failure("option '--" + name + "' takes no value");
    }
    auto &slot = result.values[name];
    if (!slot.empty() && !spec->repeatable)
      throw Failure("option '--" + name + "' given more than once");
    slot.push_back(value);
  }
  return result;
}

std::string usage();

//===----------------------------------------------------------------------===//
// Crash guard
//===----------------------------------------------------------------------===//

/// While compiled code runs, a crash ends the process with one line instead
/// of a core dump.
class CrashGuard {
public:
  CrashGuard() {
    struct sigaction action;
    std::memset(&action, 0, sizeof(action));
    action.sa_handler = &CrashGuard::handler;
    sigemptyset(&action.sa_mask);
    for (size_t i = 0; i < kCount; ++i)
      sigaction(kSignals[i], &action, &saved[i]);
  }
  ~CrashGuard() {
    for (size_t i = 0; i < kCount; ++i)
      sigaction(kSignals[i], &saved[i], nullptr);
  }

private:
  static constexpr int kSignals[] = {SIGSEGV, SIGBUS, SIGILL, SIGFPE};
  static constexpr size_t kCount = sizeof(kSignals) / sizeof(kSignals[0]);
  struct sigaction saved[kCount];

  static void handler(int signal) {
    const char *what = signal == SIGSEGV  ? "a segmentation fault"
                       : signal == SIGBUS ? "a bus error"
                       : signal == SIGILL ? "an illegal instruction"
                                          : "an arithmetic exception";
    // Several threads of a parallel loop can fault at once: the first one
    // reports, in one write, and ends the process; the others wait for that.
    static std::atomic<bool> reported{false};
    if (reported.exchange(true))
      for (;;)
        ::pause();
    char line[160] = "qforge-run: error: the module's code crashed with ";
    std::strncat(line, what, sizeof(line) - std::strlen(line) - 1);
    std::strncat(line, " (no output was written)\n",
                 sizeof(line) - std::strlen(line) - 1);
    ssize_t ignored = ::write(2, line, std::strlen(line));
    (void)ignored;
    ::_exit(1);
  }
};

//===----------------------------------------------------------------------===//
// Helpers
//===----------------------------------------------------------------------===//

std::shared_ptr<Module> loadModule(const std::string &path) {
  std::string err;
  std::shared_ptr<Module> module = Module::load(path, err);
  if (!module)
    throw Failure(err);
  return module;
}

float halfToFloat(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exponent = (h >> 10) & 0x1f;
  uint32_t mantissa = h & 0x3ff;
  uint32_t bits;
  if (exponent == 0) {
    if (mantissa == 0) {
      bits = sign;
    } else { // subnormal: renormalize
      exponent = 127 - 15 + 1;
      while (!(mantissa & 0x400)) {
        mantissa <<= 1;
        --exponent;
      }
      bits = sign | (exponent << 23) | ((mantissa & 0x3ff) << 13);
    }
  } else if (exponent == 31) {
    bits = sign | 0x7f800000u | (mantissa << 13);
  } else {
    bits = sign | ((exponent + 127 - 15) << 23) | (mantissa << 13);
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

float bf16ToFloat(uint16_t h) {
  uint32_t bits = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

std::string formatElement(const HostTensor &t, int64_t i) {
  char buf[48];
  switch (t.dtype) {
  case DType::F32:
    std::snprintf(buf, sizeof(buf), "%.6g", t.dataAs<float>()[i]);
    break;
  case DType::F64:
    std::snprintf(buf, sizeof(buf), "%.6g", t.dataAs<double>()[i]);
    break;
  case DType::F16:
    std::snprintf(buf, sizeof(buf), "%.5g",
                  halfToFloat(t.dataAs<uint16_t>()[i]));
    break;
  case DType::BF16:
    std::snprintf(buf, sizeof(buf), "%.4g",
                  bf16ToFloat(t.dataAs<uint16_t>()[i]));
    break;
  case DType::I8:
    return std::to_string(t.dataAs<int8_t>()[i]);
  case DType::U8:
    return std::to_string(t.dataAs<uint8_t>()[i]);
  case DType::I16:
    return std::to_string(t.dataAs<int16_t>()[i]);
  case DType::I32:
    return std::to_string(t.dataAs<int32_t>()[i]);
  case DType::I64:
    return std::to_string(t.dataAs<int64_t>()[i]);
  case DType::I1:
    return t.dataAs<uint8_t>()[i] ? "true" : "false";
  }
  return buf;
}

/// "f32 [1,8] = [0.1, 0.2, ..., 0.8]" (at most 8 values).
std::string preview(const HostTensor &t) {
  std::string s = t.typeString() + " = [";
  int64_t n = t.numElements();
  const int64_t shown = 8;
  for (int64_t i = 0; i < n && i < shown; ++i)
    s += (i ? ", " : "") + formatElement(t, i);
  if (n > shown)
    s += ", ... (" + std::to_string(n) + " values)";
  return s + "]";
}

/// Splits "name=file" when `name` is one of `names`; with a single name the
/// prefix may be omitted.
std::pair<std::string, std::string>
splitNamed(const std::string &spec, const char *option,
           const std::vector<const qfm::ArgInfo *> &args) {
  size_t eq = spec.find('=');
  if (eq != std::string::npos) {
    std::string name = spec.substr(0, eq);
    for (const qfm::ArgInfo *a : args)
      if (a->name == name)
        return {name, spec.substr(eq + 1)};
  }
  // With a single argument the name may be left out, unless the text looks
  // like "name=file" with a wrong name and no such file exists.
  if (args.size() == 1 &&
      (eq == std::string::npos || ::access(spec.c_str(), F_OK) == 0))
    return {args.front()->name, spec};
  std::string names;
  for (const qfm::ArgInfo *a : args)
    names += (names.empty() ? "" : ", ") + a->name;
  if (eq != std::string::npos)
    throw Failure(std::string("--") + option + " '" + spec +
                  "': the module has no " + option + " named '" +
                  spec.substr(0, eq) + "' (its " + option +
                  "s: " + (names.empty() ? "none" : names) + ")");
  throw Failure(std::string("--") + option + " '" + spec + "': name the " +
                option + " (name=file); the module's " + option +
                "s: " + (names.empty() ? "none" : names));
}

//===----------------------------------------------------------------------===//
// Subcommands
//===----------------------------------------------------------------------===//

int64_t parseCount(const Options &options, const std::string &name,
                   int64_t fallback, int64_t min);

/// --threads N: the CPU threads of every later call (0 or absent: all cores).
void applyThreads(const Options &options) {
  if (options.has("threads"))
    setCPUThreads(
        int(std::min<int64_t>(parseCount(options, "threads", 0, 1), 4096)));
}

int runMain(const Command &, const std::string &modulePath,
            const Options &options) {
  if (!options.positionals.empty())
    throw Failure("unexpected argument '" + options.positionals.front() +
                  "' (see qforge-run --help)");
  DeviceKind device;
  applyThreads(options);
  std::string deviceName = options.get("device", "auto");
  if (!parseDeviceKind(deviceName, device))
    throw Failure("unknown device '" + deviceName +
                  "' (expected auto, cpu or cuda)");

  std::shared_ptr<Module> module = loadModule(modulePath);
  std::vector<const qfm::ArgInfo *> inputArgs = module->inputs();
  std::vector<const qfm::ArgInfo *> outputArgs = module->outputs();

  // Check every name and file name before running anything.
  std::map<std::string, std::string> inputFiles, outputFiles;
  for (const std::string &spec : options.all("input")) {
    auto [name, file] = splitNamed(spec, "input", inputArgs);
    if (!isTensorFileName(file))
      throw Failure(file + ": unknown tensor file type (expected a .npy or "
                           ".pb file)");
    if (!inputFiles.emplace(name, file).second)
      throw Failure("input '" + name + "' given more than once");
  }
  for (const std::string &spec : options.all("output")) {
    auto [name, file] = splitNamed(spec, "output", outputArgs);
    if (!isTensorFileName(file))
      throw Failure(file + ": unknown tensor file type (expected a .npy or "
                           ".pb file)");
    if (!outputFiles.emplace(name, file).second)
      throw Failure("output '" + name + "' given more than once");
    size_t slash = file.rfind('/');
    std::string dir =
        slash == std::string::npos ? "." : file.substr(0, slash + 1);
    if (::access(dir.c_str(), W_OK) != 0)
      throw Failure(file + ": cannot write: " + std::strerror(errno));
  }
  if (options.has("output-dir")) {
    std::string dir = options.get("output-dir", "");
    if (::access(dir.c_str(), W_OK) != 0)
      throw Failure(dir + ": cannot write: " + std::strerror(errno));
    for (const qfm::ArgInfo *a : outputArgs) {
      if (outputFiles.count(a->name))
        continue;
      std::string file = a->name;
      std::replace(file.begin(), file.end(), '/', '_');
      outputFiles.emplace(a->name, dir + "/" + file + ".npy");
    }
  }

  std::string err;
  TensorMap inputs;
  for (const auto &[name, file] : inputFiles) {
    HostTensor t;
    if (!readTensorFile(file, t, err))
      throw Failure(err);
    inputs.emplace(name, std::move(t));
  }

  std::unique_ptr<Session> session = Session::create(module, device, err);
  if (!session)
    throw Failure(err);
  if (options.has("verbose"))
    std::fprintf(stderr, "qforge-run: running %s on %s\n", modulePath.c_str(),
                 session->description().c_str());

  TensorMap outputs;
  bool ok;
  {
    CrashGuard guard;
    ok = session->run(inputs, outputs, err);
  }
  if (!ok)
    throw Failure(modulePath + ": " + err);

  for (const auto &[name, file] : outputFiles)
    if (!writeTensorFile(file, outputs.at(name), err))
      throw Failure(err);
  for (const qfm::ArgInfo *a : outputArgs)
    if (!outputFiles.count(a->name))
      std::printf("%s: %s\n", a->name.c_str(),
                  preview(outputs.at(a->name)).c_str());
  return 0;
}

int infoMain(const Command &, const std::string &modulePath,
             const Options &options) {
  if (!options.positionals.empty())
    throw Failure("unexpected argument '" + options.positionals.front() +
                  "' (see qforge-run --help)");
  std::shared_ptr<Module> module = loadModule(modulePath);
  std::string text = module->describe();
  const CUDADeviceInfo &cuda = cudaDeviceInfo();
  text += "\nthis machine:\n  cpu: available\n  cuda: ";
  if (cuda.available) {
    int cc = cuda.computeCapability;
    text += cuda.name + " (compute capability " + std::to_string(cc / 10) +
            "." + std::to_string(cc % 10) + ")\n";
  } else {
    text += "unavailable (" + cuda.reason + ")\n";
  }
  std::fputs(text.c_str(), stdout);
  return 0;
}

/// Reads a whole file as bytes, the tokens of a byte-level model.
std::vector<int64_t> readBytes(const std::string &path) {
  std::vector<uint8_t> data;
  std::string err;
  if (!readFileBytes(path, data, err))
    throw Failure(err);
  return std::vector<int64_t>(data.begin(), data.end());
}

int64_t parseCount(const Options &options, const std::string &name,
                   int64_t fallback, int64_t min) {
  std::string text = options.get(name, std::to_string(fallback));
  char *end = nullptr;
  errno = 0;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (errno || end == text.c_str() || *end || v < min)
    throw Failure("--" + name + " expects an integer >= " +
                  std::to_string(min) + ", got '" + text + "'");
  return v;
}

/// `v` as the shortest decimal that reads back the same ("1", "0.01").
std::string formatNumber(double v) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", v);
  return text;
}

/// --NAME as a number in [min, max] (`fallback` when absent).
double parseNumber(const Options &options, const std::string &name,
                   double fallback, double min, double max) {
  if (!options.has(name))
    return fallback;
  std::string text = options.get(name, "");
  char *end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (end == text.c_str() || *end || !(v >= min && v <= max))
    throw Failure("--" + name + " expects a number from " + formatNumber(min) +
                  " to " + formatNumber(max) + ", got '" + text + "'");
  return v;
}

/// The peak resident memory of this process so far.
double peakMemoryMiB() {
  struct rusage usage;
  if (::getrusage(RUSAGE_SELF, &usage) != 0)
    return 0;
  return double(usage.ru_maxrss) / 1024.0; // KiB on Linux
}

/// Prints "qforge-run: N tokens in S s (R tokens/s[, detail]); peak memory
/// M MiB" on stderr, timed from `start`.
void printThroughput(int64_t tokens,
                     std::chrono::steady_clock::time_point start,
                     const std::string &detail = "") {
  double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  std::fprintf(stderr,
               "qforge-run: %lld tokens in %.2f s (%.1f tokens/s%s); peak "
               "memory %.1f MiB\n",
               (long long)tokens, seconds,
               seconds > 0 ? double(tokens) / seconds : 0.0,
               detail.empty() ? "" : (", " + detail).c_str(), peakMemoryMiB());
}

/// The session and language-model view shared by perplexity and generate.
struct LMSession {
  std::unique_ptr<Session> session;
  std::unique_ptr<LanguageModel> lm;
};

LMSession openLanguageModel(const std::string &modulePath,
                            const Options &options) {
  if (!options.positionals.empty())
    throw Failure("unexpected argument '" + options.positionals.front() +
                  "' (see qforge-run --help)");
  DeviceKind device;
  applyThreads(options);
  std::string deviceName = options.get("device", "auto");
  if (!parseDeviceKind(deviceName, device))
    throw Failure("unknown device '" + deviceName +
                  "' (expected auto, cpu or cuda)");
  std::shared_ptr<Module> module = loadModule(modulePath);
  std::string err;
  LMSession s;
  s.session = Session::create(module, device, err);
  if (!s.session)
    throw Failure(err);
  s.lm = LanguageModel::create(*s.session, err);
  if (!s.lm)
    throw Failure(modulePath + ": " + err);
  if (s.lm->vocabulary() != 256)
    throw Failure(
        modulePath + ": the vocabulary has " +
        std::to_string(s.lm->vocabulary()) +
        " tokens; only byte-level models (256) can read text in this version");
  return s;
}

int perplexityMain(const Command &, const std::string &modulePath,
                   const Options &options) {
  if (!options.has("text"))
    throw Failure("perplexity needs --text FILE");
  LMSession s = openLanguageModel(modulePath, options);
  std::vector<int64_t> tokens = readBytes(options.get("text", ""));
  int64_t window = parseCount(options, "window", 256, 2);
  int64_t batch = parseCount(options, "batch", 1, 1);
  bool tty = ::isatty(STDERR_FILENO);
  PerplexityResult r;
  std::string err;
  bool ok;
  auto start = std::chrono::steady_clock::now();
  {
    CrashGuard guard;
    ok = s.lm->perplexity(
        tokens, window, r, err,
        [&](int64_t done, int64_t total) {
          if (tty)
            std::fprintf(stderr, "\rqforge-run: window %lld/%lld",
                         (long long)done, (long long)total);
        },
        batch);
  }
  if (tty)
    std::fputc('\n', stderr);
  if (!ok)
    throw Failure(modulePath + ": " + err);
  std::printf(
      "nats/byte %.6f  perplexity %.4f  predictions %lld  windows %lld  "
      "window %lld\n",
      r.natsPerToken, r.perplexity, (long long)r.predictions,
      (long long)r.windows, (long long)r.window);
  // Long-context view: the loss by position in the window.
  int64_t bucket = parseCount(options, "by-position", 0, 0);
  for (int64_t b0 = 0; bucket > 0 && b0 < r.window - 1; b0 += bucket) {
    double nll = 0;
    int64_t count = 0;
    for (int64_t j = b0; j < std::min(b0 + bucket, r.window); ++j) {
      nll += r.nllAt[size_t(j)];
      count += r.countAt[size_t(j)];
    }
    if (count)
      std::printf("positions %lld-%lld  nats/byte %.6f  predictions %lld\n",
                  (long long)b0, (long long)std::min(b0 + bucket, r.window),
                  nll / double(count), (long long)count);
  }
  // Each window's tokens.
  printThroughput(r.predictions + r.windows, start,
                  "windows of " + std::to_string(r.window));
  return 0;
}

/// Accuracy with its standard error (of the mean of n 0/1 outcomes, as
/// lm-evaluation-harness reports it).
std::string accuracy(int64_t right, int64_t n) {
  double p = n ? double(right) / double(n) : 0;
  double se = n > 1 ? std::sqrt(p * (1 - p) / double(n - 1)) : 0;
  char text[64];
  std::snprintf(text, sizeof text, "%.4f ± %.4f", p, se);
  return text;
}

int evalMain(const Command &, const std::string &modulePath,
             const Options &options) {
  if (!options.has("task"))
    throw Failure("eval needs --task FILE.jsonl");
  std::string path = options.get("task", "");
  LMSession s = openLanguageModel(modulePath, options);
  int64_t window = parseCount(options, "window", 256, 2);
  int64_t limit = parseCount(options, "limit", 0, 0);
  std::vector<uint8_t> data;
  std::string err;
  if (!readFileBytes(path, data, err))
    throw Failure(err);
  // One item per line: {"context": TEXT, "choices": [TEXT, ...], "gold": I}.
  struct Item {
    std::vector<int64_t> context;
    std::vector<std::vector<int64_t>> choices;
    int64_t gold;
  };
  std::vector<Item> items;
  auto toTokens = [](const std::string &text) {
    return std::vector<int64_t>(
        reinterpret_cast<const unsigned char *>(text.data()),
        reinterpret_cast<const unsigned char *>(text.data()) + text.size());
  };
  std::string text(data.begin(), data.end());
  size_t lineNo = 0;
  for (size_t at = 0; at < text.size();) {
    size_t end = text.find('\n', at);
    if (end == std::string::npos)
      end = text.size();
    std::string line = text.substr(at, end - at);
    at = end + 1;
    ++lineNo;
    if (line.find_first_not_of(" \t\r") == std::string::npos)
      continue;
    std::string where = path + ":" + std::to_string(lineNo) + ": ";
    nlohmann::json j = nlohmann::json::parse(line, nullptr, false);
    if (j.is_discarded() || !j.is_object())
      throw Failure(where + "not a JSON object");
    if (!j.contains("context") || !j["context"].is_string() ||
        !j.contains("choices") || !j["choices"].is_array() ||
        j["choices"].size() < 2 || !j.contains("gold") ||
        !j["gold"].is_number_integer())
      throw Failure(where + "expects {\"context\": text, \"choices\": "
                            "[text, text, ...], \"gold\": index}");
    Item item;
    item.context = toTokens(j["context"].get<std::string>());
    for (const nlohmann::json &c : j["choices"]) {
      if (!c.is_string() || c.get<std::string>().empty())
        throw Failure(where + "every choice must be a non-empty text");
      item.choices.push_back(toTokens(c.get<std::string>()));
    }
    item.gold = j["gold"].get<int64_t>();
    if (item.gold < 0 || item.gold >= int64_t(item.choices.size()))
      throw Failure(where + "gold " + std::to_string(item.gold) +
                    " is not the index of a choice");
    if (item.context.empty())
      throw Failure(where + "the context is empty");
    items.push_back(std::move(item));
    if (limit && int64_t(items.size()) == limit)
      break;
  }
  if (items.empty())
    throw Failure(path + ": no items");
  // As lm-evaluation-harness: acc takes the choice of highest
  // log-likelihood, acc_norm the highest per byte of the choice.
  int64_t right = 0, rightNorm = 0, tokensRun = 0;
  bool tty = ::isatty(STDERR_FILENO);
  auto start = std::chrono::steady_clock::now();
  for (size_t i = 0; i < items.size(); ++i) {
    const Item &item = items[i];
    double best = -INFINITY, bestNorm = -INFINITY;
    int64_t pick = 0, pickNorm = 0;
    for (size_t c = 0; c < item.choices.size(); ++c) {
      double ll;
      bool greedy;
      bool ok;
      int64_t ran = 0;
      {
        CrashGuard guard;
        ok = s.lm->continuationLogLikelihood(item.context, item.choices[c],
                                             window, ll, greedy, err, &ran);
      }
      if (!ok)
        throw Failure(path + ":" + std::to_string(i + 1) + ": " + err);
      tokensRun += ran;
      double norm = ll / double(item.choices[c].size());
      if (ll > best)
        best = ll, pick = int64_t(c);
      if (norm > bestNorm)
        bestNorm = norm, pickNorm = int64_t(c);
    }
    right += pick == item.gold;
    rightNorm += pickNorm == item.gold;
    if (tty)
      std::fprintf(stderr, "\rqforge-run: item %zu/%zu", i + 1, items.size());
  }
  if (tty)
    std::fputc('\n', stderr);
  int64_t n = int64_t(items.size());
  std::printf("items %lld  acc %s  acc_norm %s\n", (long long)n,
              accuracy(right, n).c_str(), accuracy(rightNorm, n).c_str());
  printThroughput(tokensRun, start);
  return 0;
}

int generateMain(const Command &, const std::string &modulePath,
                 const Options &options) {
  LMSession s = openLanguageModel(modulePath, options);
  std::string prompt = options.get("prompt", "");
  if (prompt.empty())
    throw Failure("generate needs --prompt TEXT");
  std::vector<int64_t> tokens(prompt.begin(), prompt.end());
  for (int64_t &t : tokens)
    t &= 0xff;
  int64_t count = parseCount(options, "max-tokens", 64, 0);
  int64_t window = parseCount(options, "window", 256, 1);
  LanguageModel::Sampling sampling;
  sampling.topK = parseCount(options, "top-k", 0, 0);
  sampling.seed = uint64_t(parseCount(options, "seed", 0, 0));
  sampling.repeatLastN = parseCount(options, "repeat-last-n", 64, 0);
  sampling.temperature = parseNumber(options, "temperature", 0, 0, 1e9);
  sampling.topP = parseNumber(options, "top-p", 1, 0, 1);
  sampling.repeatPenalty = parseNumber(options, "repeat-penalty", 1, 0.01, 1e9);
  bool useCache = !options.has("no-cache");
  std::fputs(prompt.c_str(), stdout);
  std::fflush(stdout);
  std::string err;
  bool ok;
  LanguageModel::Stats stats;
  {
    CrashGuard guard;
    ok = s.lm->generate(
        tokens, count, window, sampling, err,
        [](int64_t token) {
          std::fputc(int(token), stdout);
          std::fflush(stdout);
        },
        useCache, &stats);
  }
  std::fputc('\n', stdout);
  std::fflush(stdout); // the text before the statistics, also through a pipe
  if (!ok)
    throw Failure(modulePath + ": " + err);
  auto rate = [](int64_t n, double seconds) {
    return seconds > 0 ? double(n) / seconds : 0.0;
  };
  std::fprintf(stderr,
               "qforge-run: %s; prefill %lld tokens at %.1f tokens/s, decode "
               "%lld tokens at %.1f tokens/s; peak memory %.1f MiB\n",
               s.lm->hasCache() && useCache ? "KV cache" : "no KV cache",
               (long long)stats.prefillTokens,
               rate(stats.prefillTokens, stats.prefillSeconds),
               (long long)stats.decodeTokens,
               rate(stats.decodeTokens, stats.decodeSeconds), peakMemoryMiB());
  return 0;
}

/// Times generation: a prompt of `promptTokens` spaces, then `decodeTokens`
/// greedy tokens (with the KV cache when the module has one), `iterations`
/// times after `warmup`; prints the median rates and the peak memory.
void benchLanguageModel(LanguageModel &lm, Session &session,
                        int64_t promptTokens, int64_t decodeTokens,
                        int64_t warmup, int64_t iterations,
                        const std::string &modulePath) {
  if (lm.staticLength() && promptTokens + decodeTokens > lm.staticLength())
    throw Failure(modulePath + ": the prompt and the decoded tokens (" +
                  std::to_string(promptTokens + decodeTokens) +
                  ") exceed the static sequence length " +
                  std::to_string(lm.staticLength()));
  std::vector<double> prefill, decode;
  std::string err;
  for (int64_t i = 0; i < warmup + iterations; ++i) {
    std::vector<int64_t> tokens(size_t(promptTokens), 32);
    LanguageModel::Stats stats;
    bool ok;
    {
      CrashGuard guard;
      ok = lm.generate(tokens, decodeTokens + 1, promptTokens + decodeTokens,
                       LanguageModel::Sampling(), err, {}, true, &stats);
    }
    if (!ok)
      throw Failure(modulePath + ": " + err);
    if (i >= warmup) {
      prefill.push_back(stats.prefillTokens / stats.prefillSeconds);
      decode.push_back(stats.decodeTokens / stats.decodeSeconds);
    }
  }
  std::sort(prefill.begin(), prefill.end());
  std::sort(decode.begin(), decode.end());
  std::printf("device %s  iterations %lld  prefill_tokens %lld  "
              "prefill_tok_s %.2f  decode_tokens %lld  decode_tok_s %.2f  "
              "kv_cache %s  peak_mib %.1f\n",
              session.description().c_str(), (long long)iterations,
              (long long)promptTokens, prefill[prefill.size() / 2],
              (long long)decodeTokens, decode[decode.size() / 2],
              lm.hasCache() ? "yes" : "no", peakMemoryMiB());
}

int benchMain(const Command &, const std::string &modulePath,
              const Options &options) {
  if (!options.positionals.empty())
    throw Failure("unexpected argument '" + options.positionals.front() +
                  "' (see qforge-run --help)");
  DeviceKind device;
  applyThreads(options);
  std::string deviceName = options.get("device", "auto");
  if (!parseDeviceKind(deviceName, device))
    throw Failure("unknown device '" + deviceName +
                  "' (expected auto, cpu or cuda)");
  std::shared_ptr<Module> module = loadModule(modulePath);
  int64_t iterations = parseCount(options, "iterations", 20, 1);
  int64_t warmup = parseCount(options, "warmup", 3, 0);
  std::string err;
  // Inputs: zeros of the static shape, with dynamic dimensions from --dim
  // (default 1).
  int64_t dynamicSize = parseCount(options, "dim", 1, 1);
  TensorMap inputs;
  for (const qfm::ArgInfo *a : module->inputs()) {
    std::vector<int64_t> shape = a->shape;
    for (int64_t &d : shape)
      if (d < 0)
        d = dynamicSize;
    inputs.emplace(a->name, HostTensor(a->dtype, shape));
  }
  std::unique_ptr<Session> session = Session::create(module, device, err);
  if (!session)
    throw Failure(err);
  // A language model also gets timed as generate runs it; a KV-cache module
  // only that way (its inputs' lengths depend on each other).
  std::string lmErr;
  std::unique_ptr<LanguageModel> lm = LanguageModel::create(*session, lmErr);
  bool cacheModule = lm && lm->hasCache();
  int64_t decodeTokens =
      parseCount(options, "decode-tokens", cacheModule ? 64 : 0, 0);
  if (decodeTokens > 0 && !lm)
    throw Failure(modulePath + ": --decode-tokens needs a language model (" +
                  lmErr + ")");
  if (cacheModule && decodeTokens == 0)
    throw Failure(modulePath + ": a KV-cache module is timed by generating; "
                               "--decode-tokens must be at least 1");
  if (decodeTokens > 0) {
    benchLanguageModel(*lm, *session, dynamicSize, decodeTokens, warmup,
                       iterations, modulePath);
    if (cacheModule)
      return 0;
  }
  TensorMap outputs;
  std::vector<double> times;
  {
    CrashGuard guard;
    for (int64_t i = 0; i < warmup + iterations; ++i) {
      auto start = std::chrono::steady_clock::now();
      if (!session->run(inputs, outputs, err))
        throw Failure(modulePath + ": " + err);
      std::chrono::duration<double, std::milli> ms =
          std::chrono::steady_clock::now() - start;
      if (i >= warmup)
        times.push_back(ms.count());
    }
  }
  std::sort(times.begin(), times.end());
  double mean = 0;
  for (double t : times)
    mean += t / double(times.size());
  std::printf(
      "device %s  iterations %lld  median_ms %.4f  mean_ms %.4f  min_ms %.4f\n",
      session->description().c_str(), (long long)times.size(),
      times[times.size() / 2], mean, times.front());
  return 0;
}

const std::vector<Command> &commands() {
  static const std::vector<Command> table = {
      {"run",
       "run the module's entry point (the default)",
       {{"input", "[NAME=]FILE", true,
         "an input tensor (.npy or .pb); NAME may be omitted when the "
         "module has one input"},
        {"output", "[NAME=]FILE", true,
         "write an output tensor (.npy or .pb); outputs without a file are "
         "summarized on stdout"},
        {"output-dir", "DIR", false,
         "write every output without a file as DIR/NAME.npy ('/' in a name "
         "becomes '_')"},
        {"device", "auto|cpu|cuda", false,
         "where to run (auto: the GPU if the module has code for it and one "
         "is available, else the CPU)"},
        {"threads", "N", false, "CPU threads (default: all cores)"},
        {"verbose", nullptr, false, "say which device runs the module"}},
       runMain},
      {"info",
       "describe the module: arguments, targets, sections, layers",
       {},
       infoMain},
      {"perplexity",
       "score a text file with a byte-level language model (nats/byte)",
       {{"text", "FILE", false, "the text to score (its bytes are the tokens)"},
        {"window", "N", false,
         "tokens per window (default 256; a static sequence length wins)"},
        {"batch", "N", false,
         "windows per call (default 1; a static batch wins)"},
        {"by-position", "N", false,
         "also print the loss by position in the window, in buckets of N "
         "(0-N, N-2N, ...)"},
        {"device", "auto|cpu|cuda", false, "where to run"},
        {"threads", "N", false, "CPU threads (default: all cores)"}},
       perplexityMain},
      {"eval",
       "score a multiple-choice task as lm-evaluation-harness does (acc, "
       "acc_norm)",
       {{"task", "FILE", false,
         "JSON lines {\"context\": text, \"choices\": [text, ...], "
         "\"gold\": index}"},
        {"limit", "N", false, "the first N items only (default: all)"},
        {"window", "N", false,
         "tokens per call; longer contexts lose their start (default 256)"},
        {"device", "auto|cpu|cuda", false, "where to run"},
        {"threads", "N", false, "CPU threads (default: all cores)"}},
       evalMain},
      {"generate",
       "continue a prompt with a byte-level language model",
       {{"prompt", "TEXT", false, "the text to continue"},
        {"max-tokens", "N", false, "bytes to generate (default 64)"},
        {"no-cache", nullptr, false,
         "recompute the window every step even when the module has a KV "
         "cache"},
        {"temperature", "T", false, "0 (default) is greedy; > 0 samples"},
        {"top-k", "K", false, "sample among the K most likely bytes (0: all)"},
        {"top-p", "P", false,
         "then among the most likely bytes whose probability adds up to P "
         "(default 1: all)"},
        {"repeat-penalty", "R", false,
         "divide the logits of bytes among the last --repeat-last-n by R "
         "(default 1: off; llama.cpp uses 1.1)"},
        {"repeat-last-n", "N", false,
         "how many recent bytes the penalty looks at (default 64)"},
        {"seed", "N", false, "random seed for sampling (default 0)"},
        {"window", "N", false, "context tokens per step (default 256)"},
        {"device", "auto|cpu|cuda", false, "where to run"},
        {"threads", "N", false, "CPU threads (default: all cores)"}},
       generateMain},
      {"bench",
       "time the entry point on zero inputs (milliseconds per call); a "
       "language model also as generate runs it (tokens/s, peak memory)",
       {{"iterations", "N", false, "timed calls (default 20)"},
        {"warmup", "N", false, "untimed calls first (default 3)"},
        {"dim", "N", false,
         "size of every dynamic dimension (default 1); for a language "
         "model also the prompt's tokens"},
        {"decode-tokens", "N", false,
         "a language model: time a prompt of --dim tokens and N generated "
         "ones (default 64 with a KV cache, else 0: not timed)"},
        {"device", "auto|cpu|cuda", false, "where to run"},
        {"threads", "N", false, "CPU threads (default: all cores)"}},
       benchMain},
  };
  return table;
}

const Command *findCommand(const std::string &name) {
  for (const Command &c : commands())
    if (name == c.name)
      return &c;
  return nullptr;
}

std::string usage() {
  std::string s = "usage: qforge-run MODULE.qfm [COMMAND] [OPTIONS]\n"
                  "\n"
                  "Runs a module compiled by qforge-compile.\n"
                  "\n"
                  "commands:\n";
  for (const Command &c : commands()) {
    std::string name = c.name;
    s += "  " + name +
         std::string(name.size() < 10 ? 10 - name.size() : 1, ' ') + c.summary +
         "\n";
    for (const OptionSpec &o : c.options) {
      std::string flag = std::string("--") + o.name;
      if (o.metavar)
        flag += std::string(" ") + o.metavar;
      s += "      " + flag +
           std::string(flag.size() < 26 ? 26 - flag.size() : 1, ' ') + o.help +
           "\n";
    }
  }
  s += "\nexample:\n"
       "  qforge-run model.qfm --input x=x.npy --output y.npy --device cpu\n";
  return s;
}

int realMain(int argc, char **argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  for (const std::string &a : args) {
    if (a == "--help" || a == "-h") {
      std::fputs(usage().c_str(), stdout);
      return 0;
    }
    if (a == "--") // everything after "--" is positional
      break;
  }
  if (args.empty())
    throw Failure("no module given (usage: qforge-run MODULE.qfm [COMMAND] "
                  "[OPTIONS]; see --help)");
  // Accept both "qforge-run model.qfm info" and "qforge-run info model.qfm".
  const Command *command = nullptr;
  if (args.size() >= 2 && findCommand(args[0]) && !findCommand(args[1]) &&
      args[1].compare(0, 1, "-") != 0)
    std::swap(args[0], args[1]);
  std::string modulePath = args[0];
  if (modulePath.compare(0, 1, "-") == 0)
    throw Failure("the module must come first (usage: qforge-run MODULE.qfm "
                  "[COMMAND] [OPTIONS])");
  args.erase(args.begin());
  if (!args.empty() && (command = findCommand(args[0])))
    args.erase(args.begin());
  else
    command = findCommand("run");
  Options options = parseOptions(*command, args);
  return command->run(*command, modulePath, options);
}

} // namespace

int main(int argc, char **argv) {
  try {
    return realMain(argc, argv);
  } catch (const Failure &e) {
    std::fprintf(stderr, "qforge-run: error: %s\n", e.what());
  } catch (const std::bad_alloc &) {
    std::fprintf(stderr, "qforge-run: error: out of memory\n");
  } catch (const std::exception &e) {
    std::fprintf(stderr, "qforge-run: error: %s\n", e.what());
  } catch (...) {
    std::fprintf(stderr, "qforge-run: error: unexpected failure\n");
  }
  return 1;
}
