//===- QFMFuzzer.cpp - libFuzzer target: the .qfm module reader -----------===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// Bytes -> Module::load (header, section table, checksums, manifest, the
// manifest against the sections) -> Module::describe, what `qforge-run info`
// shows. Nothing here maps the code sections executable or runs them.
//
// Random bytes rarely pass the checksums, so each input is tried twice: as
// it is, and with the section table's and every in-bounds section's FNV-1a
// checksum recomputed, which lets mutations reach the manifest parser and the
// consistency checks behind it.
//
//===----------------------------------------------------------------------===//

#include "FuzzUtil.h"
#include "qforge/Runtime/QFM.h"
#include "qforge/Runtime/Runtime.h"

#include <cstring>
#include <vector>

using namespace qforge;

namespace {
uint64_t load64(const uint8_t *p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return v;
}
void store64(uint8_t *p, uint64_t v) { std::memcpy(p, &v, 8); }

/// Recomputes the checksums that lie inside the image; false if there is
/// no readable section table.
bool fixChecksums(std::vector<uint8_t> &image) {
  if (image.size() < qfm::kHeaderSize)
    return false;
  uint32_t count;
  std::memcpy(&count, image.data() + 12, 4);
  uint64_t table = load64(image.data() + 16);
  uint64_t bytes = uint64_t(count) * qfm::kSectionEntrySize;
  if (table > image.size() || bytes > image.size() - table)
    return false;
  for (uint32_t i = 0; i < count; ++i) {
    uint8_t *entry = image.data() + table + uint64_t(i) * 64;
    uint64_t offset = load64(entry + 40), size = load64(entry + 48);
    if (offset <= image.size() && size <= image.size() - offset)
      store64(entry + 56, qfm::fnv1a64(image.data() + offset, size));
  }
  store64(image.data() + 32, qfm::fnv1a64(image.data() + table, bytes));
  return true;
}

void loadAndDescribe(const uint8_t *data, size_t size) {
  std::string path = fuzz::writeInput("module.qfm", data, size);
  std::string err;
  std::shared_ptr<rt::Module> module = rt::Module::load(path, err);
  if (!module) {
    fuzz::checkErrorLine(err);
    return;
  }
  (void)module->describe();
  (void)module->inputs();
  (void)module->outputs();
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  loadAndDescribe(data, size);
  std::vector<uint8_t> image(data, data + size);
  if (fixChecksums(image) && std::memcmp(image.data(), data, size) != 0)
    loadAndDescribe(image.data(), image.size());
  return 0;
}
