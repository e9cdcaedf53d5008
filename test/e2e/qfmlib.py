"""A small, independent reader of .qfm module files and of qf packed weights, for tests.

It follows docs/module-format.md and the qf dialect's packing convention without sharing
code with the C++ implementation, so tests compare two implementations.
"""
import json
import os
import struct
import subprocess
import sys

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


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xFFFFFFFFFFFFFFFF
    return h


def build(sections):
    """A module image from [(name, bytes)] laid out as qforge's writer does: the header,
    each section at a 64-byte aligned offset, then the section table, all checksums set."""
    out = bytearray(64)
    entries = []
    for name, body in sections:
        offset = len(out)
        entries.append(struct.pack("<40sQQQ", name.encode(), offset, len(body),
                                   fnv1a64(body)))
        out += body
        out += bytes(-len(out) % 64)
    table = len(out)
    out += b"".join(entries)
    out[:40] = struct.pack("<8sIIQQQ", b"QFMODULE", 1, len(entries), table, len(out),
                           fnv1a64(b"".join(entries)))
    return bytes(out)


def set_entry(data, index, offset=None, size=None):
    """`data` (a module image) with section table entry `index` changed and every checksum
    recomputed over the bytes the entries now name, so that only the layout is wrong."""
    data = bytearray(data)
    _, _, count, table, _ = struct.unpack_from("<8sIIQQ", data, 0)
    at = table + 64 * index
    name, off, length, _ = struct.unpack_from("<40sQQQ", data, at)
    struct.pack_into("<40sQQQ", data, at, name, off if offset is None else offset,
                     length if size is None else size, 0)
    for i in range(count):
        name, off, length, _ = struct.unpack_from("<40sQQQ", data, table + 64 * i)
        if off + length <= len(data):
            struct.pack_into("<Q", data, table + 64 * i + 56, fnv1a64(data[off:off + length]))
    struct.pack_into("<Q", data, 32, fnv1a64(data[table:table + 64 * count]))
    return bytes(data)


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


def gemv_activations(module, bits, group_size, kernel="gemv"):
    """'int8' when the module's CPU decode GEMV (kernel "gemv") or prefill GEMM
    ("gemm") quantizes the activations of an affine layer with this scheme to int8, else
    'f32'. The module records whether its kernels use int8 activations (CPUs with AVX-512
    VNNI); the kernels apply them to 1/2/4/8-bit codes in groups of a multiple of 32
    channels, per channel or per tensor (docs/decisions.md, decisions 16 and 19)."""
    for t in module.manifest.get("targets", []):
        if t.get("kind") == "cpu" and t.get(kernel + "_activations") == "int8":
            if 8 % bits == 0 and (group_size <= 0 or group_size % 32 == 0):
                return "int8"
    return "f32"


def int8_activations(x):
    """What the int8-activation GEMV computes with: x [M, K] rounded per unit of 32
    channels to d * round-half-even(x * (127 / max|x|)) with d = max|x| / 127 (all in
    f32, as the kernel does), and d for every channel. Returns (x_rounded, d), float64."""
    M, K = x.shape
    units = (K + 31) // 32
    xp = np.zeros((M, units * 32), np.float32)
    xp[:, :K] = x
    xu = xp.reshape(M, units, 32)
    amax = np.abs(xu).max(axis=2, keepdims=True)
    d = amax / np.float32(127)
    inv = np.where(amax > 0, np.float32(127) / np.where(amax > 0, amax, 1),
                   np.float32(0)).astype(np.float32)
    xq = np.round((xu * inv).astype(np.float32))
    xr = (xq.astype(np.float64) * d.astype(np.float64)).reshape(M, -1)[:, :K]
    dk = np.broadcast_to(d, xu.shape).reshape(M, -1)[:, :K].astype(np.float64)
    return xr, dk


def run(cmd):
    """Runs a tool; on failure, exits the test with its command line and output."""
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"FAIL: {' '.join(cmd)}\n{r.stdout}{r.stderr}")


def run_on_threads(module, x, work, tag, threads=(1, 2)):
    """Runs a module with one input `x` and one output `y` on the array x, once per thread
    count; returns the outputs as float64 arrays, in the order of `threads`."""
    xp = os.path.join(work, f"{tag}.x.npy")
    np.save(xp, x)
    outs = []
    for t in threads:
        yp = os.path.join(work, f"{tag}.y.t{t}.npy")
        run(["qforge-run", module, "--input", f"x={xp}", "--output", f"y={yp}",
             "--threads", str(t)])
        outs.append(np.load(yp).astype(np.float64))
    return outs
