#!/usr/bin/python3
"""Imports and compiles a large synthetic model with qforge, each step as its own process,
and prints its wall time and peak resident memory against the model's float weight bytes
(target: peak < 2x the weight bytes), the size of what it wrote and how much it printed.

The model is a random-weight llama (models/export_lm.py --synthetic: full-sequence form,
opset 17, weights as ONNX external data) exported into a temporary directory, or the one
given with --model-dir (reused when it already holds model.onnx).

  bench/bench_scale.py [--d-model 2048] [--layers 8] [--model-dir DIR] [--keep]
"""
import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time

import onnx

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
bindir = os.environ.get("QFORGE_BIN", os.path.join(root, "build", "bin"))

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--d-model", type=int, default=2048)
p.add_argument("--layers", type=int, default=8)
p.add_argument("--seq", type=int, default=256, help="static input_ids length (1xSEQ)")
p.add_argument("--model-dir", help="export here (or reuse the model.onnx already here)")
p.add_argument("--keep", action="store_true", help="keep the temporary directory")
a = p.parse_args()

FLOAT_BYTES = {onnx.TensorProto.FLOAT: 4, onnx.TensorProto.FLOAT16: 2,
               onnx.TensorProto.BFLOAT16: 2, onnx.TensorProto.DOUBLE: 8}
PRINT_LIMIT = 10 * 1024  # what a compile may print, in bytes, to count as "no weights"


def measure(cmd, work):
    """Runs cmd; returns (seconds, peak RSS bytes, bytes printed on stdout + stderr)."""
    log = os.path.join(work, "log.txt")
    with open(log, "wb") as out:
        start = time.monotonic()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.monotonic() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    printed = os.path.getsize(log)
    if proc.returncode != 0:
        with open(log, "rb") as fh:
            sys.stderr.write(fh.read()[-4000:].decode(errors="replace"))
        raise SystemExit(f"{' '.join(cmd)}: exit status {proc.returncode}")
    return seconds, usage.ru_maxrss * 1024, printed  # ru_maxrss is in KiB on Linux


def weight_bytes(model_path):
    """Bytes of the float initializers (read from the graph, not from the data file)."""
    g = onnx.load(model_path, load_external_data=False).graph
    total = 0
    for t in g.initializer:
        if t.data_type in FLOAT_BYTES:
            n = 1
            for d in t.dims:
                n *= d
            total += n * FLOAT_BYTES[t.data_type]
    return total


def mib(n):
    return f"{n / 2**20:.0f}"


work = a.model_dir or tempfile.mkdtemp(prefix="qforge-scale-")
os.makedirs(work, exist_ok=True)
model = os.path.join(work, "model.onnx")
rows = []
try:
    if not os.path.exists(model):
        s, rss, _ = measure(["/usr/bin/python3", os.path.join(root, "models", "export_lm.py"),
                             "--synthetic", work, "--d-model", str(a.d_model),
                             "--layers", str(a.layers)], work)
        rows.append(("export (torch)", s, rss, None, None))
    wb = weight_bytes(model)
    data = sum(os.path.getsize(os.path.join(work, f)) for f in os.listdir(work)
               if f.startswith("model.onnx"))
    shape = ["--shape", f"input_ids=1x{a.seq}"]
    s, rss, printed = measure([os.path.join(bindir, "qforge-import"), model] + shape +
                              ["-o", os.devnull], work)
    rows.append(("import", s, rss, None, None))
    prints = {}
    for name, flags in [("compile none", ["--method", "none"]),
                        ("compile rtn4 g128", ["--method", "rtn", "--bits", "4",
                                               "--group-size", "128"])]:
        qfm = os.path.join(work, "model.qfm")
        s, rss, printed = measure([os.path.join(bindir, "qforge-compile"), model, "-o", qfm] +
                                  flags + shape + ["--target", "cpu", "--quiet"], work)
        rows.append((name, s, rss, os.path.getsize(qfm), printed))
        prints[name] = printed
        os.remove(qfm)
finally:
    if not a.keep and not a.model_dir:
        shutil.rmtree(work, ignore_errors=True)

print(f"model: random-weight llama, d_model {a.d_model}, {a.layers} layers, input_ids 1x{a.seq}; "
      f"float weights {wb} bytes ({mib(wb)} MiB), ONNX files {mib(data)} MiB"
      + (f", kept in {work}" if a.keep or a.model_dir else ""))
print(f"{'step':>18} {'wall s':>8} {'peak RSS MiB':>12} {'RSS/weights':>11} {'< 2x':>5} "
      f"{'module MiB':>10} {'printed B':>9}")
for name, s, rss, size, printed in rows:
    ratio = rss / wb
    verdict = "-" if name.startswith("export") else ("PASS" if ratio < 2 else "over")
    print(f"{name:>18} {s:8.1f} {mib(rss):>12} {ratio:10.2f}x {verdict:>5} "
          f"{mib(size) if size is not None else '-':>10} "
          f"{printed if printed is not None else '-':>9}")
quiet = all(n < PRINT_LIMIT for n in prints.values())
print(f"compile output: {max(prints.values())} bytes at most "
      f"({'no weights printed' if quiet else 'OVER ' + str(PRINT_LIMIT) + ' bytes: check it'})")
