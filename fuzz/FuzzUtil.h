//===- FuzzUtil.h - Helpers shared by the libFuzzer targets -----*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// The readers under test take paths (the importer resolves external data
// next to the model; the module loader maps its file), so each input is
// written to a file in a directory private to the fuzzing process.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_FUZZ_FUZZUTIL_H
#define QFORGE_FUZZ_FUZZUTIL_H

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <unistd.h>

namespace qforge::fuzz {

/// A directory that lives as long as the process: /tmp/qforge-fuzz-XXXXXX.
inline const std::string &privateDir() {
  static const std::string dir = [] {
    const char *base = std::getenv("TMPDIR");
    std::string pattern =
        std::string(base && *base ? base : "/tmp") + "/qforge-fuzz-XXXXXX";
    if (!::mkdtemp(pattern.data())) {
      std::perror("qforge fuzz: mkdtemp");
      std::abort();
    }
    return pattern;
  }();
  return dir;
}

/// Writes `data` to `privateDir()/name` and returns the path.
inline std::string writeInput(const char *name, const uint8_t *data,
                              size_t size) {
  std::string path = privateDir() + "/" + name;
  FILE *f = std::fopen(path.c_str(), "wb");
  if (!f || (size && std::fwrite(data, 1, size, f) != size) ||
      std::fclose(f) != 0) {
    std::perror("qforge fuzz: writing the input");
    std::abort();
  }
  return path;
}

/// A failed property: prints it and aborts, so libFuzzer keeps the input.
[[noreturn]] inline void violated(const std::string &what) {
  std::fprintf(stderr, "qforge fuzz: %s\n", what.c_str());
  std::abort();
}

/// A reader that failed must say why, on one line.
inline void checkErrorLine(const std::string &error) {
  if (error.empty())
    violated("failed without an error message");
  if (error.find('\n') != std::string::npos)
    violated("error spans several lines: " + error);
}

} // namespace qforge::fuzz

#endif // QFORGE_FUZZ_FUZZUTIL_H
