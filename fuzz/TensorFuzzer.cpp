//===- TensorFuzzer.cpp - libFuzzer target: .npy and TensorProto readers --===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//
//
// The first byte picks the reader (even: .npy, odd: ONNX TensorProto), the
// rest is the file. A tensor that decodes must survive a round trip through
// the encoder bit for bit; a failure must come with a one-line message.
//
//===----------------------------------------------------------------------===//

#include "FuzzUtil.h"
#include "qforge/Runtime/TensorIO.h"

#include <cstring>

using namespace qforge;
using namespace qforge::rt;

namespace {
void checkSame(const HostTensor &a, const HostTensor &b, const char *format) {
  if (a.dtype != b.dtype || a.shape != b.shape ||
      a.byteSize() != b.byteSize() ||
      (a.byteSize() && std::memcmp(a.data(), b.data(), a.byteSize()) != 0))
    fuzz::violated(std::string(format) + " round trip changed " +
                   a.typeString() + " into " + b.typeString());
}
} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  if (size == 0)
    return 0;
  bool npy = (data[0] & 1) == 0;
  ++data;
  --size;
  HostTensor tensor;
  std::string err, name;
  bool ok = npy ? parseNpy(data, size, "input", tensor, err)
                : parseTensorProto(data, size, "input", tensor, err, &name);
  if (!ok) {
    fuzz::checkErrorLine(err);
    return 0;
  }
  std::vector<uint8_t> image =
      npy ? encodeNpy(tensor) : encodeTensorProto(tensor, name);
  HostTensor again;
  std::string name2;
  if (!(npy ? parseNpy(image.data(), image.size(), "re-encoded", again, err)
            : parseTensorProto(image.data(), image.size(), "re-encoded", again,
                               err, &name2)))
    fuzz::violated("the re-encoded tensor does not decode: " + err);
  checkSame(tensor, again, npy ? ".npy" : "TensorProto");
  if (name != name2)
    fuzz::violated("TensorProto round trip changed the name");
  return 0;
}
