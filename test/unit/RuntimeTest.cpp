//===- RuntimeTest.cpp - Tests of the module format and runtime -*- C++ -*-===//
//
// Part of the qforge project.
//
//===----------------------------------------------------------------------===//

#include "qforge/Runtime/Runtime.h"
#include "qforge/Runtime/QFM.h"
#include "qforge/Runtime/TensorIO.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <dirent.h>
#include <dlfcn.h>
#include <fstream>
#include <limits>
#include <unistd.h>

using namespace qforge;
using namespace qforge::rt;
using nlohmann::json;

/// Expects `needle` to occur in the string `text`.
#define EXPECT_HAS(text, needle)                                               \
  EXPECT_PRED_FORMAT2(::testing::IsSubstring, needle, text)

namespace {

//===----------------------------------------------------------------------===//
// Fixtures and helpers
//===----------------------------------------------------------------------===//

/// A fresh temporary directory per test, removed afterwards.
class RuntimeTest : public ::testing::Test {
protected:
  void SetUp() override {
    const char *tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp && *tmp ? tmp : "/tmp") + "/qforge-rt-test-XXXXXX";
    std::vector<char> buf(pattern.begin(), pattern.end());
    buf.push_back('\0');
    ASSERT_NE(mkdtemp(buf.data()), nullptr);
    dir = buf.data();
  }
  void TearDown() override {
    for (const std::string &f : listDir())
      ::unlink((dir + "/" + f).c_str());
    ::rmdir(dir.c_str());
  }
  std::string path(const std::string &name) const { return dir + "/" + name; }
  std::vector<std::string> listDir() const {
    std::vector<std::string> names;
    if (DIR *d = opendir(dir.c_str())) {
      while (dirent *e = readdir(d))
        if (std::strcmp(e->d_name, ".") && std::strcmp(e->d_name, ".."))
          names.push_back(e->d_name);
      closedir(d);
    }
    return names;
  }

  std::string dir;
};

std::vector<uint8_t> readAll(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), {});
}

void writeAll(const std::string &path, const std::vector<uint8_t> &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(reinterpret_cast<const char *>(bytes.data()), bytes.size());
}

template <typename T> T load(const std::vector<uint8_t> &b, size_t at) {
  T v;
  std::memcpy(&v, b.data() + at, sizeof(T));
  return v;
}

template <typename T> void store(std::vector<uint8_t> &b, size_t at, T v) {
  std::memcpy(b.data() + at, &v, sizeof(T));
}

/// FNV-1a 64 written out independently of the library.
uint64_t referenceFnv(const uint8_t *p, size_t n) {
  uint64_t h = 14695981039346656037ULL;
  for (size_t i = 0; i < n; ++i)
    h = (h ^ p[i]) * 1099511628211ULL;
  return h;
}

/// A .qfm image assembled directly from the format description, without the
/// library's writer (and without its validation).
std::vector<uint8_t> assembleModule(
    const std::vector<std::pair<std::string, std::string>> &sections) {
  std::vector<uint8_t> out(64, 0);
  std::vector<uint8_t> table;
  for (const auto &[name, bytes] : sections) {
    while (out.size() % 64)
      out.push_back(0);
    uint64_t offset = out.size();
    out.insert(out.end(), bytes.begin(), bytes.end());
    std::vector<uint8_t> entry(64, 0);
    std::memcpy(entry.data(), name.data(), name.size());
    store<uint64_t>(entry, 40, offset);
    store<uint64_t>(entry, 48, bytes.size());
    store<uint64_t>(
        entry, 56,
        referenceFnv(reinterpret_cast<const uint8_t *>(bytes.data()),
                     bytes.size()));
    table.insert(table.end(), entry.begin(), entry.end());
  }
  while (out.size() % 64)
    out.push_back(0);
  uint64_t tableOffset = out.size();
  out.insert(out.end(), table.begin(), table.end());
  std::memcpy(out.data(), "QFMODULE", 8);
  store<uint32_t>(out, 8, 1);
  store<uint32_t>(out, 12, static_cast<uint32_t>(sections.size()));
  store<uint64_t>(out, 16, tableOffset);
  store<uint64_t>(out, 24, out.size());
  store<uint64_t>(out, 32, referenceFnv(table.data(), table.size()));
  return out;
}

json sampleManifest() {
  return json::parse(R"({
    "format_version": 1,
    "producer": "qforge 0.1.0",
    "source": "model.onnx",
    "entry": {
      "name": "main",
      "args": [
        {"role": "weight", "name": "w0", "section": "weight.0", "dtype": "i32", "shape": [8, 16]},
        {"role": "input",  "name": "x",  "dtype": "f32", "shape": [1, 4]},
        {"role": "output", "name": "y",  "dtype": "f32", "shape": [1, 8]}
      ]
    },
    "targets": [
      {"kind": "cpu", "library": "code.cpu", "symbol": "qf_entry_main",
       "cpu": "x86-64", "features": []}
    ],
    "layers": [
      {"name": "fc1", "method": "rtn", "bits": 4, "group_size": 32, "bytes": 512, "error": 0.0125}
    ]
  })");
}

std::vector<uint8_t> weightBytes() {
  std::vector<uint8_t> w(8 * 16 * 4);
  for (size_t i = 0; i < w.size(); ++i)
    w[i] = static_cast<uint8_t>(i * 7 + 3);
  return w;
}

/// Writes a valid module with `manifest` and returns its path.
std::string writeModule(const std::string &path, const json &manifest,
                        const std::vector<uint8_t> &code = {0x7f, 'E', 'L',
                                                            'F'}) {
  qfm::Writer writer;
  std::vector<uint8_t> w = weightBytes();
  writer.addSection("weight.0", w.data(), w.size());
  writer.addSection("code.cpu", code.data(), code.size());
  writer.setManifest(manifest);
  std::string err;
  EXPECT_TRUE(writer.write(path, err)) << err;
  return path;
}

std::string openError(const std::string &path) {
  std::string err;
  auto file = qfm::File::open(path, err);
  EXPECT_EQ(file, nullptr);
  return err;
}

//===----------------------------------------------------------------------===//
// .qfm format
//===----------------------------------------------------------------------===//

TEST(QFMTest, Fnv1aKnownValues) {
  // Published FNV-1a 64 test vectors.
  EXPECT_EQ(qfm::fnv1a64("", 0), 0xcbf29ce484222325ULL);
  EXPECT_EQ(qfm::fnv1a64("a", 1), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(qfm::fnv1a64("foobar", 6), 0x85944171f73967e8ULL);
}

TEST(QFMTest, DTypes) {
  qfm::DType t;
  ASSERT_TRUE(qfm::parseDType("bf16", t));
  EXPECT_EQ(t, qfm::DType::BF16);
  EXPECT_EQ(qfm::dtypeSize(t), 2u);
  EXPECT_EQ(qfm::dtypeSize(qfm::DType::I1), 1u);
  EXPECT_EQ(qfm::dtypeSize(qfm::DType::I64), 8u);
  EXPECT_FALSE(qfm::parseDType("f8", t));
  EXPECT_EQ(qfm::formatShape({1, 4}), "[1,4]");
  EXPECT_EQ(qfm::formatShape({}), "[]");
  EXPECT_EQ(qfm::formatShape({-1, 4}), "[?,4]");
}

TEST_F(RuntimeTest, WriterReaderRoundTrip) {
  std::string file = writeModule(path("m.qfm"), sampleManifest());
  // Nothing but the module itself is left behind.
  EXPECT_EQ(listDir(), std::vector<std::string>{"m.qfm"});

  std::string err;
  auto m = qfm::File::open(file, err);
  ASSERT_NE(m, nullptr) << err;
  EXPECT_EQ(m->version(), 1u);
  ASSERT_EQ(m->sections().size(), 3u);
  EXPECT_EQ(m->sections()[0].name, "manifest");
  EXPECT_EQ(m->sections()[1].name, "weight.0");
  EXPECT_EQ(m->sections()[2].name, "code.cpu");
  for (const auto &s : m->sections()) {
    EXPECT_EQ(s.offset % 64, 0u) << s.name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(s.data) % 64, 0u) << s.name;
  }
  const auto *w = m->findSection("weight.0");
  ASSERT_NE(w, nullptr);
  std::vector<uint8_t> expected = weightBytes();
  ASSERT_EQ(w->size, expected.size());
  EXPECT_EQ(std::memcmp(w->data, expected.data(), expected.size()), 0);

  const qfm::Manifest &mf = m->manifest();
  EXPECT_EQ(mf.producer, "qforge 0.1.0");
  EXPECT_EQ(mf.entryName, "main");
  ASSERT_EQ(mf.args.size(), 3u);
  EXPECT_EQ(mf.args[0].role, qfm::ArgRole::Weight);
  EXPECT_EQ(mf.args[0].section, "weight.0");
  EXPECT_EQ(mf.args[0].shape, (std::vector<int64_t>{8, 16}));
  EXPECT_EQ(mf.args[1].dtype, qfm::DType::F32);
  EXPECT_EQ(mf.args[2].role, qfm::ArgRole::Output);
  ASSERT_EQ(mf.targets.size(), 1u);
  EXPECT_EQ(mf.targets[0].symbol, "qf_entry_main");
  EXPECT_EQ(mf.raw["layers"][0]["method"], "rtn");
}

TEST_F(RuntimeTest, LayoutMatchesTheSpecification) {
  std::string file = writeModule(path("m.qfm"), sampleManifest());
  std::vector<uint8_t> b = readAll(file);
  ASSERT_GE(b.size(), 64u);
  EXPECT_EQ(std::memcmp(b.data(), "QFMODULE", 8), 0);
  EXPECT_EQ(load<uint32_t>(b, 8), 1u);
  uint32_t count = load<uint32_t>(b, 12);
  uint64_t tableOffset = load<uint64_t>(b, 16);
  EXPECT_EQ(count, 3u);
  EXPECT_EQ(load<uint64_t>(b, 24), b.size());
  EXPECT_EQ(load<uint64_t>(b, 32),
            referenceFnv(b.data() + tableOffset, count * 64));
  for (size_t i = 40; i < 64; ++i)
    EXPECT_EQ(b[i], 0) << i;
  for (uint32_t i = 0; i < count; ++i) {
    size_t e = tableOffset + i * 64;
    uint64_t offset = load<uint64_t>(b, e + 40),
             size = load<uint64_t>(b, e + 48);
    EXPECT_EQ(offset % 64, 0u);
    EXPECT_EQ(load<uint64_t>(b, e + 56), referenceFnv(b.data() + offset, size));
  }
  // The manifest is the first section and is plain JSON.
  size_t manifestSize = load<uint64_t>(b, tableOffset + 48);
  json parsed = json::parse(b.begin() + 64, b.begin() + 64 + manifestSize);
  EXPECT_EQ(parsed["entry"]["name"], "main");

  // An image assembled by hand from the description loads too.
  std::string code = "\x7f"
                     "ELF";
  std::vector<uint8_t> w = weightBytes();
  writeAll(path("hand.qfm"),
           assembleModule({{"weight.0", std::string(w.begin(), w.end())},
                           {"code.cpu", code},
                           {"manifest", sampleManifest().dump()}}));
  std::string err;
  EXPECT_NE(qfm::File::open(path("hand.qfm"), err), nullptr) << err;
}

TEST_F(RuntimeTest, SerializeEqualsWrite) {
  qfm::Writer writer;
  std::vector<uint8_t> w = weightBytes();
  writer.addSection("weight.0", w.data(), w.size());
  writer.addSection("code.cpu",
                    "\x7f"
                    "ELF",
                    4);
  writer.setManifest(sampleManifest());
  std::vector<uint8_t> image;
  std::string err;
  ASSERT_TRUE(writer.serialize(image, err)) << err;
  ASSERT_TRUE(writer.write(path("m.qfm"), err)) << err;
  EXPECT_EQ(readAll(path("m.qfm")), image);
}

TEST_F(RuntimeTest, BadMagic) {
  std::string file = writeModule(path("m.qfm"), sampleManifest());
  std::vector<uint8_t> b = readAll(file);
  b[0] = 'X';
  writeAll(file, b);
  EXPECT_EQ(openError(file),
            file + ": not a qforge module (bad magic at byte offset 0)");
  writeAll(file, {});
  EXPECT_HAS(openError(file), ("bad magic at byte offset 0"));
}

TEST_F(RuntimeTest, Truncated) {
  std::string file = writeModule(path("m.qfm"), sampleManifest());
  std::vector<uint8_t> b = readAll(file);
  size_t full = b.size();
  b.resize(700);
  writeAll(file, b);
  EXPECT_EQ(openError(file), file + ": truncated: header says " +
                                 std::to_string(full) +
                                 " bytes, file has 700 (byte offset 24)");
  b.resize(20);
  writeAll(file, b);
  EXPECT_HAS(openError(file), ("truncated"));
}

TEST_F(RuntimeTest, FlippedByteInSection) {
  std::string file = writeModule(path("m.qfm"), sampleManifest());
  std::string err;
  uint64_t offset, size;
  {
    auto m = qfm::File::open(file, err);
    ASSERT_NE(m, nullptr) << err;
    offset = m->findSection("weight.0")->offset;
    size = m->findSection("weight.0")->size;
  }
  std::vector<uint8_t> b = readAll(file);
  b[offset + 100] ^= 0x10;
  writeAll(file, b);
  EXPECT_EQ(openError(file), file + ": section 'weight.0' (byte offset " +
                                 std::to_string(offset) + ", " +
                                 std::to_string(size) +
                                 " bytes) is corrupted: checksum mismatch");
}

TEST_F(RuntimeTest, CorruptTable) {
  std::string file = writeModule(path("m.qfm"), sampleManifest());
  std::vector<uint8_t> b = readAll(file);
  uint64_t tableOffset = load<uint64_t>(b, 16);
  b[tableOffset + 41] ^= 1; // an offset in the table
  writeAll(file, b);
  EXPECT_HAS(openError(file),
             ("section table (byte offset " + std::to_string(tableOffset) +
              ", 3 entries) is corrupted: checksum mismatch"));
}

TEST_F(RuntimeTest, SectionOutOfBounds) {
  std::string file = writeModule(path("m.qfm"), sampleManifest());
  std::vector<uint8_t> b = readAll(file);
  uint64_t tableOffset = load<uint64_t>(b, 16);
  store<uint64_t>(b, tableOffset + 64 + 48, 1u << 30); // weight.0 size
  store<uint64_t>(b, 32, referenceFnv(b.data() + tableOffset, 3 * 64));
  writeAll(file, b);
  EXPECT_HAS(openError(file),
             ("section table entry 1 (byte offset " +
              std::to_string(tableOffset + 64) + "): section 'weight.0'"));
  EXPECT_HAS(openError(file), ("lies outside the file"));
}

TEST_F(RuntimeTest, UnsupportedVersion) {
  std::string file = writeModule(path("m.qfm"), sampleManifest());
  std::vector<uint8_t> b = readAll(file);
  store<uint32_t>(b, 8, 7);
  writeAll(file, b);
  EXPECT_HAS(openError(file),
             ("unsupported format version 7, this runtime reads "
              "version 1 (byte offset 8)"));
}

TEST_F(RuntimeTest, BadManifest) {
  std::string code = "\x7f"
                     "ELF";
  std::vector<uint8_t> w = weightBytes();
  std::string weights(w.begin(), w.end());
  auto check = [&](const std::string &manifestText,
                   const std::string &expected) {
    writeAll(path("bad.qfm"), assembleModule({{"manifest", manifestText},
                                              {"weight.0", weights},
                                              {"code.cpu", code}}));
    EXPECT_HAS(openError(path("bad.qfm")), (expected)) << manifestText;
  };
  // The manifest is the first section, at byte offset 64.
  check("{\"format_version\": 1,", "bad manifest (byte offset 64, 21 "
                                   "bytes): invalid JSON at byte offset 85");
  check("[1, 2]", "expected a JSON object");
  check("{\"entry\": {}}", "manifest: missing key 'format_version'");

  json m = sampleManifest();
  m["entry"]["args"][1].erase("dtype");
  check(m.dump(), "entry.args[1]: missing key 'dtype'");
  m = sampleManifest();
  m["entry"]["args"][1]["dtype"] = "f8";
  check(m.dump(), "entry.args[1].dtype: unknown dtype 'f8'");
  m = sampleManifest();
  m["entry"]["args"][2]["role"] = "scratch";
  check(m.dump(), "entry.args[2].role: unknown role 'scratch'");
  m = sampleManifest();
  m["entry"]["args"][0]["shape"] = {8, 8};
  check(m.dump(), "weight 'w0' (i32 [8,8]) needs 256 bytes, but section "
                  "'weight.0' holds 512");
  m = sampleManifest();
  m["targets"][0]["library"] = "code.gpu";
  check(m.dump(), "targets[0] (cpu:x86-64): no library section 'code.gpu'");
  m = sampleManifest();
  m["format_version"] = 2;
  check(m.dump(), "format_version: unsupported manifest version 2");
  m = sampleManifest();
  m["targets"].push_back(
      {{"kind", "cuda"}, {"library", "code.cpu"}, {"symbol", "f"}});
  check(m.dump(), "targets[1]: missing key 'arch'");

  writeAll(path("none.qfm"),
           assembleModule({{"weight.0", weights}, {"code.cpu", code}}));
  EXPECT_HAS(openError(path("none.qfm")), ("no 'manifest' section"));
}

TEST_F(RuntimeTest, WriterRejectsInconsistentModules) {
  std::string err;
  {
    qfm::Writer writer; // the weight section is missing
    writer.addSection("code.cpu",
                      "\x7f"
                      "ELF",
                      4);
    writer.setManifest(sampleManifest());
    EXPECT_FALSE(writer.write(path("m.qfm"), err));
    EXPECT_HAS(err, ("no section 'weight.0'"));
  }
  {
    qfm::Writer writer;
    writer.addSection(std::string(40, 'n'), "", 0);
    writer.setManifest(sampleManifest());
    EXPECT_FALSE(writer.write(path("m.qfm"), err));
    EXPECT_HAS(err, ("must have 1 to 39 characters"));
  }
  {
    qfm::Writer writer;
    writer.addSection("code.cpu", "a", 1);
    writer.addSection("code.cpu", "b", 1);
    EXPECT_FALSE(writer.write(path("m.qfm"), err));
    EXPECT_HAS(err, ("duplicate section 'code.cpu'"));
  }
  {
    qfm::Writer writer; // an unwritable destination
    writer.addSection("code.cpu",
                      "\x7f"
                      "ELF",
                      4);
    std::vector<uint8_t> w = weightBytes();
    writer.addSection("weight.0", w.data(), w.size());
    writer.setManifest(sampleManifest());
    EXPECT_FALSE(writer.write(path("no/such/dir/m.qfm"), err));
    EXPECT_HAS(err, ("m.qfm: cannot write: No such file or directory"));
  }
  // No output and no temporary file were left behind.
  EXPECT_TRUE(listDir().empty());
}

//===----------------------------------------------------------------------===//
// Tensor files
//===----------------------------------------------------------------------===//

HostTensor patterned(DType type, std::vector<int64_t> shape) {
  HostTensor t(type, std::move(shape));
  auto *p = static_cast<uint8_t *>(t.data());
  for (size_t i = 0; i < t.byteSize(); ++i)
    p[i] = static_cast<uint8_t>(i * 13 + 1);
  if (type == DType::I1)
    for (size_t i = 0; i < t.byteSize(); ++i)
      p[i] &= 1;
  return t;
}

void expectSame(const HostTensor &a, const HostTensor &b) {
  EXPECT_EQ(a.dtype, b.dtype);
  EXPECT_EQ(a.shape, b.shape);
  ASSERT_EQ(a.byteSize(), b.byteSize());
  EXPECT_EQ(std::memcmp(a.data(), b.data(), a.byteSize()), 0);
}

TEST(QFMTest, SizesOfHostileShapes) {
  using qfm::DType;
  const int64_t big = int64_t(1) << 62;
  uint64_t bytes = 0;
  EXPECT_TRUE(qfm::checkedByteSize({3, 4}, DType::F32, bytes));
  EXPECT_EQ(bytes, 48u);
  EXPECT_TRUE(qfm::checkedByteSize({}, DType::F64, bytes));
  EXPECT_EQ(bytes, 8u);
  EXPECT_TRUE(qfm::checkedByteSize({big, 1}, DType::U8, bytes));
  // Element count fits, bytes do not; count alone overflows; negative.
  EXPECT_FALSE(qfm::checkedByteSize({big, 1}, DType::F32, bytes));
  EXPECT_FALSE(qfm::checkedByteSize({big, 4}, DType::U8, bytes));
  EXPECT_FALSE(qfm::checkedByteSize({2, -3}, DType::F32, bytes));
  // numElements saturates instead of wrapping, and a zero dimension wins.
  EXPECT_EQ(qfm::numElements({big, 4}), std::numeric_limits<int64_t>::max());
  EXPECT_EQ(qfm::numElements({big, 4, 0}), 0);
  EXPECT_EQ(qfm::numElements({5, -1}), 0);
  EXPECT_EQ(qfm::numElements({}), 1);
}

TEST(HostTensorTest, ReshapeReusesTheBuffer) {
  // A KV cache grows by one token a call: within the reserved capacity the
  // buffer stays where it is, and reserve keeps the contents.
  HostTensor t = patterned(DType::F32, {1, 2, 3, 4});
  std::vector<uint8_t> before(static_cast<uint8_t *>(t.data()),
                              static_cast<uint8_t *>(t.data()) + t.byteSize());
  t.buffer.reserve(1 * 2 * 10 * 4 * 4);
  EXPECT_EQ(t.byteSize(), before.size());
  EXPECT_EQ(std::memcmp(t.data(), before.data(), before.size()), 0);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.data()) % 64, 0u);
  void *at = t.data();
  for (int64_t p = 0; p <= 10; ++p) {
    t.reshape(DType::F32, {1, 2, p, 4});
    EXPECT_EQ(t.byteSize(), size_t(2 * p * 4 * 4));
    if (p > 0)
      EXPECT_EQ(t.data(), at) << "reallocated at P = " << p;
  }
  t.reshape(DType::F32, {1, 2, 11, 4}); // past the capacity: a new buffer
  EXPECT_EQ(t.byteSize(), size_t(2 * 11 * 4 * 4));
  EXPECT_GE(t.buffer.capacity(), t.byteSize());
  // A moved tensor takes its capacity along.
  HostTensor moved = std::move(t);
  EXPECT_EQ(t.buffer.capacity(), 0u);
  EXPECT_GE(moved.buffer.capacity(), moved.byteSize());
}

TEST_F(RuntimeTest, NpyRoundTrip) {
  struct Case {
    DType type;
    std::vector<int64_t> shape;
  };
  std::vector<Case> cases = {
      {DType::F32, {2, 3}},    {DType::F16, {4}},    {DType::BF16, {2, 2}},
      {DType::F64, {1, 1, 3}}, {DType::I8, {5}},     {DType::U8, {}},
      {DType::I16, {3, 1}},    {DType::I32, {0, 4}}, {DType::I64, {2, 2, 2, 2}},
      {DType::I1, {7}},
  };
  for (const Case &c : cases) {
    HostTensor t = patterned(c.type, c.shape);
    std::string err;
    std::string file =
        path(std::string("t_") + qfm::dtypeName(c.type) + ".npy");
    ASSERT_TRUE(writeTensorFile(file, t, err)) << err;
    std::vector<uint8_t> bytes = readAll(file);
    // The data start is 64-byte aligned, as NumPy itself writes.
    EXPECT_EQ((bytes.size() - t.byteSize()) % 64, 0u);
    HostTensor back;
    ASSERT_TRUE(readTensorFile(file, back, err)) << err;
    expectSame(t, back);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(back.data()) % 64, 0u);
  }
}

std::vector<uint8_t> npyImage(const std::string &header,
                              const std::vector<uint8_t> &data, int major = 1) {
  std::vector<uint8_t> out = {0x93, 'N', 'U', 'M', 'P', 'Y', uint8_t(major), 0};
  uint32_t len = header.size();
  out.push_back(len & 0xff);
  out.push_back((len >> 8) & 0xff);
  if (major >= 2) {
    out.push_back((len >> 16) & 0xff);
    out.push_back(len >> 24);
  }
  out.insert(out.end(), header.begin(), header.end());
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

TEST(TensorIOTest, NpyHeaders) {
  std::vector<uint8_t> data(2 * 3 * 4, 0);
  float one = 1.0f;
  std::memcpy(data.data() + 4, &one, 4);
  HostTensor t;
  std::string err;
  // NumPy's own spelling, in both format versions.
  for (int major : {1, 2}) {
    std::vector<uint8_t> img = npyImage(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }     \n",
        data, major);
    ASSERT_TRUE(parseNpy(img.data(), img.size(), "a.npy", t, err)) << err;
    EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(t.dataAs<float>()[1], 1.0f);
  }
  // Keys in another order, a 1-tuple.
  std::vector<uint8_t> img = npyImage(
      "{'shape': (6,), 'fortran_order': False, 'descr': '<f4'}\n", data);
  ASSERT_TRUE(parseNpy(img.data(), img.size(), "a.npy", t, err)) << err;
  EXPECT_EQ(t.shape, (std::vector<int64_t>{6}));

  img = npyImage("{'descr': '<f4', 'fortran_order': True, 'shape': (2, 3), }\n",
                 data);
  EXPECT_FALSE(parseNpy(img.data(), img.size(), "a.npy", t, err));
  EXPECT_HAS(err, ("Fortran-ordered arrays are not supported"));

  img = npyImage(
      "{'descr': '>f4', 'fortran_order': False, 'shape': (2, 3), }\n", data);
  EXPECT_FALSE(parseNpy(img.data(), img.size(), "a.npy", t, err));
  EXPECT_HAS(err, ("big-endian data ('>f4') is not supported"));

  img = npyImage(
      "{'descr': '<c8', 'fortran_order': False, 'shape': (2, 3), }\n", data);
  EXPECT_FALSE(parseNpy(img.data(), img.size(), "a.npy", t, err));
  EXPECT_HAS(err, ("unsupported dtype '<c8'"));

  std::string header =
      "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4), }\n";
  img = npyImage(header, data);
  EXPECT_FALSE(parseNpy(img.data(), img.size(), "a.npy", t, err));
  EXPECT_EQ(err,
            "a.npy: truncated: f32 [2,4] needs 32 bytes from byte offset " +
                std::to_string(10 + header.size()) + ", file has " +
                std::to_string(img.size()) + " bytes");

  // Control characters quoted from the file do not break the one-line error.
  img = npyImage(
      "{'de\nscr': '<f4', 'fortran_order': False, 'shape': (2,), }\n", data);
  EXPECT_FALSE(parseNpy(img.data(), img.size(), "a.npy", t, err));
  EXPECT_EQ(err,
            "a.npy: bad header at byte offset 21: unexpected key 'de scr'");

  img = npyImage("{'descr': '<f4', 'fortran_order': False, 'shape': 2, }\n",
                 data);
  EXPECT_FALSE(parseNpy(img.data(), img.size(), "a.npy", t, err));
  EXPECT_HAS(err, ("a.npy: bad header at byte offset 60: expected '('"));

  img = {'P', 'K', 3, 4};
  EXPECT_FALSE(parseNpy(img.data(), img.size(), "a.npy", t, err));
  EXPECT_HAS(err, ("not a NumPy .npy file (bad magic at byte offset 0)"));
}

/// A protobuf writer for hand-assembled TensorProtos.
struct Proto {
  std::vector<uint8_t> bytes;
  void varint(uint64_t v) {
    while (v >= 0x80) {
      bytes.push_back(uint8_t(v | 0x80));
      v >>= 7;
    }
    bytes.push_back(uint8_t(v));
  }
  void tag(int field, int wire) { varint(uint64_t(field) << 3 | wire); }
  void field(int number, uint64_t v) {
    tag(number, 0);
    varint(v);
  }
  void bytesField(int number, const void *p, size_t n) {
    tag(number, 2);
    varint(n);
    const auto *b = static_cast<const uint8_t *>(p);
    bytes.insert(bytes.end(), b, b + n);
  }
};

TEST(TensorIOTest, TensorProtoRawData) {
  Proto p;
  p.field(1, 2); // dims, not packed
  p.field(1, 3);
  p.field(2, OnnxFloat);
  p.bytesField(8, "x", 1);
  float values[6] = {1, 2, 3, 4, 5, -6.5f};
  p.bytesField(9, values, sizeof(values));
  HostTensor t;
  std::string err, name;
  ASSERT_TRUE(
      parseTensorProto(p.bytes.data(), p.bytes.size(), "x.pb", t, err, &name))
      << err;
  EXPECT_EQ(name, "x");
  EXPECT_EQ(t.dtype, DType::F32);
  EXPECT_EQ(t.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(t.dataAs<float>()[5], -6.5f);

  // The same tensor encoded by the library decodes identically.
  std::vector<uint8_t> encoded = encodeTensorProto(t, "x");
  HostTensor back;
  ASSERT_TRUE(
      parseTensorProto(encoded.data(), encoded.size(), "y.pb", back, err))
      << err;
  expectSame(t, back);
}

TEST(TensorIOTest, TensorProtoTypedFields) {
  // Packed dims, packed float_data.
  Proto p;
  Proto dims;
  dims.varint(3);
  p.bytesField(1, dims.bytes.data(), dims.bytes.size());
  p.field(2, OnnxFloat);
  float values[3] = {0.5f, -1.0f, 3.25f};
  p.bytesField(4, values, sizeof(values));
  HostTensor t;
  std::string err;
  ASSERT_TRUE(parseTensorProto(p.bytes.data(), p.bytes.size(), "f.pb", t, err))
      << err;
  EXPECT_EQ(t.shape, (std::vector<int64_t>{3}));
  EXPECT_EQ(t.dataAs<float>()[2], 3.25f);

  // Unpacked float_data (wire type 5), one value per field.
  Proto q;
  q.field(1, 2);
  q.field(2, OnnxFloat);
  for (float v : {7.0f, 8.0f}) {
    q.tag(4, 5);
    uint8_t raw[4];
    std::memcpy(raw, &v, 4);
    q.bytes.insert(q.bytes.end(), raw, raw + 4);
  }
  ASSERT_TRUE(parseTensorProto(q.bytes.data(), q.bytes.size(), "g.pb", t, err))
      << err;
  EXPECT_EQ(t.dataAs<float>()[1], 8.0f);

  // int64_data packed, negative values, scalar (no dims).
  Proto r;
  r.field(2, OnnxInt64);
  Proto packed;
  packed.varint(static_cast<uint64_t>(int64_t(-42)));
  r.bytesField(7, packed.bytes.data(), packed.bytes.size());
  ASSERT_TRUE(parseTensorProto(r.bytes.data(), r.bytes.size(), "i.pb", t, err))
      << err;
  EXPECT_TRUE(t.shape.empty());
  EXPECT_EQ(t.dataAs<int64_t>()[0], -42);

  // float16 through int32_data (bit patterns).
  Proto h;
  h.field(1, 2);
  h.field(2, OnnxFloat16);
  h.field(5, 0x3c00);
  h.field(5, 0xc000);
  ASSERT_TRUE(parseTensorProto(h.bytes.data(), h.bytes.size(), "h.pb", t, err))
      << err;
  EXPECT_EQ(t.dtype, DType::F16);
  EXPECT_EQ(t.dataAs<uint16_t>()[0], 0x3c00);
  EXPECT_EQ(t.dataAs<uint16_t>()[1], 0xc000);
}

TEST(TensorIOTest, TensorProtoErrors) {
  HostTensor t;
  std::string err;
  Proto p;
  p.field(1, 4);
  p.field(2, OnnxFloat);
  size_t rawAt = p.bytes.size();
  float values[4] = {1, 2, 3, 4};
  p.bytesField(9, values, sizeof(values));
  std::vector<uint8_t> cut(p.bytes.begin(), p.bytes.end() - 3);
  EXPECT_FALSE(parseTensorProto(cut.data(), cut.size(), "c.pb", t, err));
  EXPECT_EQ(err, "c.pb: field 9 (length 16) runs past the end of the data (" +
                     std::to_string(cut.size()) + " bytes) (byte offset " +
                     std::to_string(rawAt + 1) + ")");

  std::vector<uint8_t> varint = {0x08, 0xff}; // dims with a cut varint
  EXPECT_FALSE(parseTensorProto(varint.data(), varint.size(), "v.pb", t, err));
  EXPECT_EQ(err, "v.pb: truncated varint (byte offset 1)");

  Proto wrongCount;
  wrongCount.field(1, 3);
  wrongCount.field(2, OnnxFloat);
  wrongCount.bytesField(9, values, 8);
  EXPECT_FALSE(parseTensorProto(wrongCount.bytes.data(),
                                wrongCount.bytes.size(), "w.pb", t, err));
  EXPECT_HAS(err, ("raw_data holds 8 bytes, but f32 [3] needs 12"));

  Proto str;
  str.field(2, 8);
  EXPECT_FALSE(
      parseTensorProto(str.bytes.data(), str.bytes.size(), "s.pb", t, err));
  EXPECT_EQ(err, "s.pb: unsupported data_type 8 (STRING)");

  std::vector<uint8_t> group = {0x0b}; // field 1, wire type 3
  EXPECT_FALSE(parseTensorProto(group.data(), group.size(), "g.pb", t, err));
  EXPECT_EQ(err, "g.pb: field 1 has wire type 3 (byte offset 0)");
}

TEST_F(RuntimeTest, TensorFilesByExtension) {
  HostTensor t = patterned(DType::I32, {2, 2});
  std::string err;
  ASSERT_TRUE(writeTensorFile(path("t.pb"), t, err)) << err;
  HostTensor back;
  ASSERT_TRUE(readTensorFile(path("t.pb"), back, err)) << err;
  expectSame(t, back);
  EXPECT_FALSE(writeTensorFile(path("t.txt"), t, err));
  EXPECT_HAS(err, ("expected a .npy or .pb file"));
  EXPECT_FALSE(readTensorFile(path("missing.npy"), back, err));
  EXPECT_HAS(err, ("missing.npy: cannot open"));
}

//===----------------------------------------------------------------------===//
// Runtime
//===----------------------------------------------------------------------===//

TEST(RuntimeUnitTest, MemRefDescriptors) {
  EXPECT_EQ(memrefDescriptorSize(0), 24u);
  EXPECT_EQ(memrefDescriptorSize(1), 40u);
  EXPECT_EQ(memrefDescriptorSize(3), 72u);

  alignas(64) static float buffer[64];
  MemRefArgs args;
  args.add(buffer, {});
  args.add(buffer, {7});
  args.add(buffer, {2, 3});
  args.add(buffer, {2, 3, 4});
  ASSERT_EQ(args.size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    const int64_t *d = static_cast<const int64_t *>(args.data()[i]);
    EXPECT_EQ(d, args.descriptor(i));
    void *allocated, *aligned;
    std::memcpy(&allocated, &d[0], 8);
    std::memcpy(&aligned, &d[1], 8);
    EXPECT_EQ(allocated, buffer);
    EXPECT_EQ(aligned, buffer);
    EXPECT_EQ(d[2], 0); // offset
  }
  const int64_t *r1 = args.descriptor(1);
  EXPECT_EQ(r1[3], 7);
  EXPECT_EQ(r1[4], 1);
  const int64_t *r2 = args.descriptor(2);
  EXPECT_EQ((std::vector<int64_t>(r2 + 3, r2 + 7)),
            (std::vector<int64_t>{2, 3, 3, 1}));
  const int64_t *r3 = args.descriptor(3);
  EXPECT_EQ((std::vector<int64_t>(r3 + 3, r3 + 9)),
            (std::vector<int64_t>{2, 3, 4, 12, 4, 1}));
}

TEST(RuntimeUnitTest, SharedObjectFromMemory) {
  // Load a second copy of the C math library from its bytes and call it.
  Dl_info info;
  double (*hostCos)(double) = &std::cos;
  ASSERT_NE(dladdr(reinterpret_cast<void *>(hostCos), &info), 0);
  std::vector<uint8_t> bytes = readAll(info.dli_fname);
  ASSERT_FALSE(bytes.empty()) << info.dli_fname;
  std::string err;
  auto object =
      SharedObject::load(bytes.data(), bytes.size(), "section 'libm'", err);
  ASSERT_NE(object, nullptr) << err;
  auto *loadedCos =
      reinterpret_cast<double (*)(double)>(object->symbol("cos", err));
  ASSERT_NE(loadedCos, nullptr) << err;
  EXPECT_EQ(loadedCos(0.0), 1.0);
  EXPECT_EQ(object->symbol("no_such_symbol", err), nullptr);
  EXPECT_EQ(err, "section 'libm' has no symbol 'no_such_symbol'");

  const char junk[] = "not an object";
  EXPECT_EQ(SharedObject::load(junk, sizeof(junk), "section 'code.cpu'", err),
            nullptr);
  EXPECT_EQ(err, "section 'code.cpu' is not an ELF shared object");
}

TEST(RuntimeUnitTest, CPUFeatures) {
#if defined(__x86_64__)
  EXPECT_TRUE(hostHasCPUFeature("sse2"));
  EXPECT_TRUE(hostHasCPUFeature("64bit"));
  EXPECT_EQ(hostHasCPUFeature("avx2"), bool(__builtin_cpu_supports("avx2")));
  EXPECT_EQ(hostHasCPUFeature("fma"), bool(__builtin_cpu_supports("fma")));
  EXPECT_EQ(hostHasCPUFeature("avx512f"),
            bool(__builtin_cpu_supports("avx512f")));
  EXPECT_EQ(hostHasCPUFeature("sse4.2"), hostHasCPUFeature("sse4_2"));
#endif
  EXPECT_FALSE(hostHasCPUFeature("no-such-feature"));
  qfm::TargetInfo t;
  t.kind = "cpu";
  t.features = {"no-such-feature"};
  EXPECT_EQ(missingCPUFeatures(t), std::vector<std::string>{"no-such-feature"});
}

TEST(RuntimeUnitTest, DeviceNames) {
  DeviceKind k;
  ASSERT_TRUE(parseDeviceKind("cuda", k));
  EXPECT_EQ(k, DeviceKind::CUDA);
  EXPECT_FALSE(parseDeviceKind("tpu", k));
  EXPECT_EQ(parseCUDAArch("sm_90"), 90);
  EXPECT_EQ(parseCUDAArch("sm_90a"), 90);
  EXPECT_EQ(parseCUDAArch("sm_100"), 100);
  EXPECT_EQ(parseCUDAArch("compute_90"), -1);
}

bool hostHasCUDADriver() {
  void *h = dlopen("libcuda.so.1", RTLD_NOW | RTLD_LOCAL);
  if (h)
    dlclose(h);
  return h != nullptr;
}

TEST(RuntimeUnitTest, CUDAUnavailableWithoutDriver) {
  if (hostHasCUDADriver())
    GTEST_SKIP() << "this machine has a CUDA driver";
  std::string reason;
  EXPECT_FALSE(cudaAvailable(reason));
  EXPECT_HAS(reason, ("CUDA driver not found (libcuda.so.1)"));
  EXPECT_FALSE(cudaDeviceInfo().available);
}

TEST_F(RuntimeTest, DeviceSelectionWithoutCUDA) {
  if (hostHasCUDADriver())
    GTEST_SKIP() << "this machine has a CUDA driver";
  json m = sampleManifest();
  m["targets"] = json::array({{{"kind", "cuda"},
                               {"library", "code.cpu"},
                               {"symbol", "qf_entry_main"},
                               {"arch", "sm_90"}}});
  std::string file = writeModule(path("gpu.qfm"), m);
  std::string err;
  auto module = Module::load(file, err);
  ASSERT_NE(module, nullptr) << err;
  EXPECT_EQ(Session::create(module, DeviceKind::Auto, err), nullptr);
  EXPECT_EQ(err, file +
                     ": module was compiled only for cuda:sm_90, and no "
                     "CUDA device is available (CUDA driver not found "
                     "(libcuda.so.1): " +
                     cudaDeviceInfo().reason.substr(std::strlen(
                         "CUDA driver not found (libcuda.so.1): ")) +
                     ")");
  EXPECT_EQ(Session::create(module, DeviceKind::CUDA, err), nullptr);
  EXPECT_HAS(err, ("cannot run on cuda: no CUDA device is available"));
  EXPECT_EQ(Session::create(module, DeviceKind::CPU, err), nullptr);
  EXPECT_HAS(err, ("module was compiled only for cuda:sm_90"));
}

TEST_F(RuntimeTest, SessionChecks) {
  // A cpu target needing a feature no CPU has.
  json m = sampleManifest();
  m["targets"][0]["features"] = {"avx2", "no-such-feature"};
  std::string file = writeModule(path("f.qfm"), m);
  std::string err;
  auto module = Module::load(file, err);
  ASSERT_NE(module, nullptr) << err;
  EXPECT_EQ(Session::create(module, DeviceKind::CPU, err), nullptr);
  EXPECT_HAS(err, ("module needs CPU feature 'no-such-feature', "
                   "which this CPU lacks"));

  // The "code" is libm; its 'cos' symbol is never called because every run
  // below fails its input checks first.
  Dl_info info;
  double (*hostCos)(double) = &std::cos;
  ASSERT_NE(dladdr(reinterpret_cast<void *>(hostCos), &info), 0);
  m = sampleManifest();
  m["targets"][0]["symbol"] = "cos";
  module =
      Module::load(writeModule(path("s.qfm"), m, readAll(info.dli_fname)), err);
  ASSERT_NE(module, nullptr) << err;
  auto session = Session::create(module, DeviceKind::Auto, err);
  ASSERT_NE(session, nullptr) << err;
  EXPECT_EQ(session->device(), DeviceKind::CPU);
  TensorMap outputs;
  EXPECT_FALSE(session->run({}, outputs, err));
  EXPECT_EQ(err, "missing input 'x' (f32 [1,4])");
  EXPECT_FALSE(
      session->run({{"x", HostTensor(DType::F32, {2, 4})}}, outputs, err));
  EXPECT_EQ(err, "input 'x': expected shape [1,4] (f32), got [2,4]");
  EXPECT_FALSE(
      session->run({{"x", HostTensor(DType::I64, {1, 4})}}, outputs, err));
  EXPECT_EQ(err, "input 'x': expected dtype f32 (shape [1,4]), got i64");
  EXPECT_FALSE(session->run({{"x", HostTensor(DType::F32, {1, 4})},
                             {"z", HostTensor(DType::F32, {1})}},
                            outputs, err));
  EXPECT_EQ(err, "unknown input 'z' (the module's inputs: 'x')");
  EXPECT_TRUE(outputs.empty());

  // Carrying an output into an input: names, dtype and rank are checked, and
  // until a call has kept the output the input must still be given.
  EXPECT_FALSE(session->carry("nope", "x", err));
  EXPECT_EQ(err, "no output 'nope' to carry");
  EXPECT_FALSE(session->carry("y", "nope", err));
  EXPECT_EQ(err, "no input 'nope' to carry 'y' into");
  EXPECT_TRUE(session->carry("y", "x", err)) << err;
  EXPECT_TRUE(session->carriedShape("x").empty());
  EXPECT_FALSE(session->run({}, outputs, err));
  EXPECT_EQ(err, "missing input 'x' (f32 [1,4])");

  // A dynamic dimension takes any size; the rank and the static dimensions
  // are still checked.
  m["entry"]["args"][1]["shape"] = {-1, 4};
  auto dynamicModule =
      Module::load(writeModule(path("d.qfm"), m, readAll(info.dli_fname)), err);
  ASSERT_NE(dynamicModule, nullptr) << err;
  auto dynamicSession = Session::create(dynamicModule, DeviceKind::CPU, err);
  ASSERT_NE(dynamicSession, nullptr) << err;
  EXPECT_FALSE(dynamicSession->run({{"x", HostTensor(DType::F32, {3, 5})}},
                                   outputs, err));
  EXPECT_EQ(err, "input 'x': expected shape [?,4] (f32), got [3,5]");
  EXPECT_FALSE(
      dynamicSession->run({{"x", HostTensor(DType::F32, {4})}}, outputs, err));
  EXPECT_EQ(err, "input 'x': expected shape [?,4] (f32), got [4]");

  std::string text = module->describe();
  EXPECT_HAS(text, ("entry: main (3 arguments"));
  EXPECT_HAS(text, ("weight.0"));
  EXPECT_HAS(text, ("layers (1):"));
  EXPECT_HAS(text, ("0.0125"));
}

} // namespace
