#!/usr/bin/python3
"""Writes the committed seed corpora of the fuzz targets into fuzz/corpus/.

  /usr/bin/python3 fuzz/make_corpus.py BUILD_BIN_DIR

import-onnx/  the ONNX models of test/import/*.test, dynamic_model.py's model, a
              one-layer llama of width 16 from models/export_lm.py (needs python3-torch),
              and one ONNX backend node test per operator the importer lists (up to 4 KiB)
qfm/          modules compiled by BUILD_BIN_DIR/qforge-compile from small models, with the
              native code section cut to 64 bytes (the reader never runs it) and the
              checksums recomputed
tensor/       .npy (first byte 0) and TensorProto (first byte 1) files of several dtypes,
              ranks and header versions
Every file is small; rerun this script only to refresh them.
"""
import glob
import json
import os
import struct
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NODE_TESTS = "/usr/share/libonnx-testdata/data/node"
sys.path.insert(0, os.path.join(ROOT, "test/e2e"))
import qfmlib  # noqa: E402


def write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def onnx_seeds(bin_dir, out, tmp):
    for test in sorted(glob.glob(os.path.join(ROOT, "test/import/*.test"))):
        name = os.path.splitext(os.path.basename(test))[0]
        model = os.path.join(tmp, name + ".onnx")
        r = subprocess.run([sys.executable, os.path.join(ROOT, "test/import/onnx_text.py"),
                            test, model], capture_output=True)
        if r.returncode == 0:
            write(os.path.join(out, "import-" + name + ".onnx"), open(model, "rb").read())
    dyn = os.path.join(tmp, "dynamic.onnx")
    subprocess.run([sys.executable, os.path.join(ROOT, "test/e2e/dynamic_model.py"), "make",
                    dyn], check=True)
    write(os.path.join(out, "dynamic-model.onnx"), open(dyn, "rb").read())
    llama_dir = os.path.join(tmp, "llama")
    subprocess.run([sys.executable, os.path.join(ROOT, "models/export_lm.py"), "--synthetic",
                    llama_dir, "--d-model", "16", "--layers", "1", "--heads", "2",
                    "--d-ff", "32"], check=True, capture_output=True)
    llama = onnx.load(os.path.join(llama_dir, "model.onnx"))
    # Cut the position tables and the causal mask (512 positions) to 32.
    for node in llama.graph.node:
        for attr in node.attribute:
            if node.op_type == "Constant" and attr.name == "value" and \
                    len(attr.t.dims) == 2 and attr.t.dims[0] == 512:
                a = numpy_helper.to_array(attr.t)
                a = a[:32, :32] if a.shape[1] == 512 else a[:32]
                attr.t.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(a), attr.t.name))
    write(os.path.join(out, "llama-tiny.onnx"), llama.SerializeToString())
    ops = subprocess.run([os.path.join(bin_dir, "qforge-import"), "--list-ops"],
                         capture_output=True, text=True, check=True).stdout.split()
    for op in ops:
        snake = "".join("_" + c.lower() if c.isupper() else c for c in op).lstrip("_")
        for model in sorted(glob.glob(os.path.join(NODE_TESTS, "test_" + snake + "*",
                                                   "model.onnx"))):
            if os.path.getsize(model) <= 4096:
                write(os.path.join(out, "node-" + os.path.basename(os.path.dirname(model))
                                   + ".onnx"), open(model, "rb").read())
                break


def shrink_module(path):
    """The module with every code.* section cut to 64 bytes, checksums recomputed."""
    module = qfmlib.Module(path)
    return qfmlib.build([(name, module.section(name)[:64] if name.startswith("code.")
                          else module.section(name)) for name in module.sections])


def qfm_seeds(bin_dir, out, tmp):
    dyn = os.path.join(tmp, "dynamic.onnx")
    compile_ = os.path.join(bin_dir, "qforge-compile")
    for tag, args in [("float", ["--method", "none"]), ("rtn4", []),
                      ("rtn8-zp", ["--bits", "8", "--sym=false"]),
                      ("rtn3-g4", ["--bits", "3", "--group-size", "4"])]:
        module = os.path.join(tmp, tag + ".qfm")
        subprocess.run([compile_, dyn, "-o", module] + args, check=True,
                       capture_output=True)
        write(os.path.join(out, tag + ".qfm"), shrink_module(module))


def tensor_seeds(out):
    rng = np.random.default_rng(0)
    arrays = {
        "f32": rng.standard_normal((2, 3)).astype(np.float32),
        "f16": rng.standard_normal((4,)).astype(np.float16),
        "f64": np.array(3.5),
        "i64": np.arange(6, dtype=np.int64).reshape(1, 2, 3),
        "i32": np.arange(4, dtype=np.int32),
        "i8": np.array([-3, 0, 7], dtype=np.int8),
        "u8": np.array([[1, 2]], dtype=np.uint8),
        "bool": np.array([True, False]),
        "empty": np.zeros((0, 4), np.float32),
    }
    for name, a in arrays.items():
        path = os.path.join(tempfile.mkdtemp(), "a.npy")
        np.save(path, a)
        write(os.path.join(out, "npy-" + name), b"\0" + open(path, "rb").read())
        t = numpy_helper.from_array(a, name="t_" + name)
        write(os.path.join(out, "pb-raw-" + name), b"\1" + t.SerializeToString())
    # Version 2.0 header, and bf16 as numpy's raw two-byte void.
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }"
    header += b" " * (-(12 + len(header) + 1) % 64) + b"\n"
    v2 = b"\x93NUMPY\x02\x00" + struct.pack("<I", len(header)) + header
    write(os.path.join(out, "npy-v2"), b"\0" + v2 + np.ones(2, np.float32).tobytes())
    header = b"{'descr': '<V2', 'fortran_order': False, 'shape': (3,), }"
    header += b" " * (-(10 + len(header) + 1) % 64) + b"\n"
    bf16 = b"\x93NUMPY\x01\x00" + struct.pack("<H", len(header)) + header
    write(os.path.join(out, "npy-bf16"), b"\0" + bf16 + bytes(6))
    # Typed fields instead of raw_data.
    typed = [helper.make_tensor("f", TensorProto.FLOAT, [2], [1.0, -2.0]),
             helper.make_tensor("i", TensorProto.INT64, [3], [1, 2, 3]),
             helper.make_tensor("h", TensorProto.FLOAT16, [2], [1.0, 0.5]),
             helper.make_tensor("d", TensorProto.DOUBLE, [], [0.25]),
             helper.make_tensor("b", TensorProto.BOOL, [2], [1, 0])]
    for t in typed:
        write(os.path.join(out, "pb-typed-" + t.name), b"\1" + t.SerializeToString())


def main():
    bin_dir = sys.argv[1]
    corpus = os.path.join(HERE, "corpus")
    with tempfile.TemporaryDirectory() as tmp:
        onnx_seeds(bin_dir, os.path.join(corpus, "import-onnx"), tmp)
        qfm_seeds(bin_dir, os.path.join(corpus, "qfm"), tmp)
    tensor_seeds(os.path.join(corpus, "tensor"))


if __name__ == "__main__":
    main()
