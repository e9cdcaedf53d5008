"""A small, independent reader of .qfm module files and of qf packed weights, for tests.

It follows docs/module-format.md and the qf dialect's packing convention without sharing
code with the C++ implementation, so tests compare two implementations.
"""
import json
import struct

import numpy as np

DTYPES = {"f32": np.float32, "f16": np.float16, "f64": np.float64, "i8": np.int8,
          "u8": np.uint8, "i16": np.int16, "i32": np.int32, "i64": np.int64, "i1": np.bool_}


class Module:
    def __init__(self, path):
        with open(path, "rb") as f:
            self.data = f.read()
        magic, version, count, table, size = struct.unpack_from("<8sIIQQ", self.data, 0)
        assert magic == b"QFMODULE" and version == 1, "not a qforge module"
        assert size == len(self.data), "truncated"
        self.sections = {}
        for i in range(count):
            name, off, length, _ = struct.unpack_from("<40sQQQ", self.data, table + 64 * i)
            self.sections[name.rstrip(b"\0").decode()] = (off, length)
        self.manifest = json.loads(self.section("manifest"))

    def section(self, name):
        off, length = self.sections[name]
        return self.data[off:off + length]

    def args(self, role=None):
        return [a for a in self.manifest["entry"]["args"] if role is None or a["role"] == role]

    def weight(self, arg):
        return np.frombuffer(self.section(arg["section"]), DTYPES[arg["dtype"]]).reshape(arg["shape"])

    def weights_by_name(self):
        return {a["name"]: self.weight(a) for a in self.args("weight")}


def unpack_codes(words, cols, bits):
    """Codes [N, cols] from packed rows [N, W] of uint32 (LSB-first bitstream per row)."""
    words = words.astype(np.uint32)
    rows = words.shape[0]
    # Expand each row to bits, then gather groups of `bits`.
    as_bytes = words.view(np.uint8).reshape(rows, -1)
    bitstream = np.unpackbits(as_bytes, axis=1, bitorder="little")
    bitstream = bitstream[:, :cols * bits].reshape(rows, cols, bits).astype(np.int64)
    return (bitstream << np.arange(bits)).sum(axis=2)


def dequantize(codes, scales, zero_points, bits, group_size, cols):
    """W[n, k] = scale[n', g] * (code - zero); group_size -1 per channel, 0 per tensor."""
    rows = codes.shape[0]
    q = unpack_codes(codes, cols, bits).astype(np.float64)
    if group_size > 0:
        g = np.arange(cols) // group_size
    else:
        g = np.zeros(cols, dtype=np.int64)
    srow = np.zeros(rows, dtype=np.int64) if group_size == 0 else np.arange(rows)
    s = scales.astype(np.float64)[srow][:, g]
    if zero_points is None:
        z = float(1 << (bits - 1))
    else:
        z = zero_points.view(np.uint8).astype(np.float64)[srow][:, g]
    return s * (q - z), s
