#!/usr/bin/python3
"""Times one linear layer y = x · W (batch 1, the decode-time GEMV) compiled by qforge
with float weights and with RTN at several bit widths, all in this run, and prints the
speed of each quantized module relative to the float one and the weight bandwidth it
reaches.

  bench/bench_linear.py [--shapes 2048x2048,4096x4096] [--device cpu] [--iterations 10]
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
bindir = os.environ.get("QFORGE_BIN", os.path.join(root, "build", "bin"))

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--shapes", default="1024x1024,2048x2048,4096x4096", help="KxN list")
p.add_argument("--device", default="cpu")
p.add_argument("--iterations", type=int, default=10)
a = p.parse_args()

schemes = [("float", ["--method", "none"]),
           ("rtn8 pc", ["--method", "rtn", "--bits", "8", "--group-size", "-1"]),
           ("rtn4 g128", ["--method", "rtn", "--bits", "4", "--group-size", "128"]),
           ("rtn3 g128", ["--method", "rtn", "--bits", "3", "--group-size", "128"]),
           ("rtn2 g64", ["--method", "rtn", "--bits", "2", "--group-size", "64"])]


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


print(f"{'shape':>11} {'scheme':>10} {'weight MiB':>10} {'median ms':>10} {'vs float':>9} {'GB/s':>7}")
with tempfile.TemporaryDirectory() as d:
    for shape in a.shapes.split(","):
        k, n = (int(v) for v in shape.split("x"))
        onnx_path = os.path.join(d, f"l{k}x{n}.onnx")
        run([sys.executable, os.path.join(root, "models", "linear", "make_linear.py"), onnx_path,
             "--in", str(k), "--out", str(n)])
        base = None
        for name, flags in schemes:
            qfm = os.path.join(d, "m.qfm")
            run([os.path.join(bindir, "qforge-compile"), onnx_path, "-o", qfm, "--target",
                 "cuda:sm_90" if a.device == "cuda" else "cpu", "--quiet"] + flags)
            info = run([os.path.join(bindir, "qforge-run"), qfm, "info"])
            size, unit = re.search(r"\(\d+ arguments, ([\d.]+) (B|KiB|MiB|GiB) of weights\)",
                                   info).groups()
            weight_bytes = float(size) * {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[unit]
            out = run([os.path.join(bindir, "qforge-run"), qfm, "bench", "--device", a.device,
                       "--iterations", str(a.iterations)])
            ms = float(re.search(r"median_ms ([\d.]+)", out).group(1))
            base = base or ms
            print(f"{shape:>11} {name:>10} {weight_bytes / 2**20:10.2f} {ms:10.3f} "
                  f"{base / ms:8.2f}x {weight_bytes / ms / 1e6:7.2f}")
