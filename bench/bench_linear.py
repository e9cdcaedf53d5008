#!/usr/bin/python3
"""Times one linear layer y = x · W compiled by qforge with float weights and with RTN at
several bit widths, all in this run, at M = 1 (decode GEMV) and M = 256 (prefill GEMM),
on 1 thread and on all cores, and prints for each module the speed relative to the float
module, the weight bandwidth it reaches (GB/s of weight bytes, codes + scales + zero
points) and that bandwidth as a percentage of a streaming-read probe over a buffer of the
same size on the same threads, measured in the same run (bench/bandwidth_probe.c, built
here with cc -O3 -march=native -fopenmp). M = 256 also shows GFLOP/s.

  bench/bench_linear.py [--shapes 1024x1024,4096x4096] [--rows 1,256] [--threads 1,2]
                        [--device cpu] [--iterations 20] [--activations int8,f32]

With --device cuda the modules are compiled for cuda:sm_90 and two baselines are measured in
the same run by bench/cublas_fp16.c (built here with cc; the CUDA driver and cuBLAS are
opened with dlopen): cuBLAS FP16 GEMM of the same shape ("vs cuBLAS" column), and a 1 GiB
device-to-device copy whose read + write rate stands for the HBM bandwidth ("% of probe").
qforge's times are whole calls of the session (input copied in, output copied back).

The weights are called again and again, so a matrix that fits in the last-level cache
(4096x4096 at 4 bits is 8.5 MiB) is read from it; the probe reads a buffer of the same
byte count the same way, so the percentage compares like with like. `--probe-bytes N`
adds a DRAM-sized probe (e.g. 1073741824) for reference.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
bindir = os.environ.get("QFORGE_BIN", os.path.join(root, "build", "bin"))

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--shapes", default="1024x1024,4096x4096", help="KxN list")
p.add_argument("--rows", default="1,256", help="activation rows M to time")
p.add_argument("--threads", default=f"1,{os.cpu_count()}", help="thread counts")
p.add_argument("--device", default="cpu")
p.add_argument("--iterations", type=int, default=20)
p.add_argument("--activations", default="int8,f32",
               help="GEMV activations to compare for the quantized modules")
p.add_argument("--probe-bytes", type=int, default=0, help="also probe this many bytes")
a = p.parse_args()

schemes = [("float", ["--method", "none"])]
for bits, group in ((8, -1), (4, 128), (4, 32), (3, 128), (2, 64)):
    label = f"rtn{bits} " + ("pc" if group == -1 else f"g{group}")
    for act in a.activations.split(","):
        if bits == 3 and act == "int8":
            continue  # 3-bit codes always use f32 activations
        schemes.append((f"{label} {act}", ["--method", "rtn", "--bits", str(bits),
                                           "--group-size", str(group),
                                           "--activations", act]))
rows = [int(v) for v in a.rows.split(",")]
threads = [int(v) for v in a.threads.split(",")]


def run(cmd):
    return subprocess.run(cmd, check=True, capture_output=True, text=True).stdout


with tempfile.TemporaryDirectory() as d:
    probe = None
    cublas = None
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc and a.device == "cpu":
        probe = os.path.join(d, "probe")
        subprocess.run([cc, "-O3", "-march=native", "-ffast-math", "-fopenmp",
                        os.path.join(root, "bench", "bandwidth_probe.c"), "-o", probe],
                       check=True)
    if a.device == "cuda":
        if not cc:
            sys.exit("bench_linear: --device cuda needs a C compiler for the cuBLAS baseline")
        cublas = os.path.join(d, "cublas_fp16")
        subprocess.run([cc, "-O2", os.path.join(root, "bench", "cublas_fp16.c"), "-o", cublas,
                        "-ldl"], check=True)
        hbm_gbs = float(run([cublas, "copy", str(2**30), "10"]).split()[3])
        print(f"device-to-device copy of 1 GiB: {hbm_gbs:.0f} GB/s (read + write)")

    def probe_gbs(nbytes, t):
        if cublas:
            return hbm_gbs
        if not probe:
            return None
        out = run([probe, str(int(nbytes)), str(t), "20" if nbytes < 2**28 else "5"])
        return float(out.split()[1])

    def cublas_ms(m, k, n):
        out = run([cublas, "gemm", str(m), str(k), str(n), str(a.iterations)])
        return float(re.search(r"median_ms ([\d.]+)", out).group(1))

    if probe and a.probe_bytes:
        for t in threads:
            print(f"probe {a.probe_bytes / 2**20:.0f} MiB, {t} thread(s): "
                  f"{probe_gbs(a.probe_bytes, t):.2f} GB/s")
    extra = " vs cuBLAS |" if cublas else ""
    print(f"| shape (KxN) | M | threads | scheme | weight MiB | median ms | vs float |{extra} "
          f"GB/s | % of probe | GFLOP/s |")
    print("|---|---:|---:|---|---:|---:|---:|" + ("---:|" if cublas else "") +
          "---:|---:|---:|")
    for shape in a.shapes.split(","):
        k, n = (int(v) for v in shape.split("x"))
        onnx_path = os.path.join(d, f"l{k}x{n}.onnx")
        run([sys.executable, os.path.join(root, "models", "linear", "make_linear.py"),
             onnx_path, "--in", str(k), "--out", str(n), "--dynamic-batch"])
        modules = []
        for name, flags in schemes:
            qfm = os.path.join(d, f"m{len(modules)}.qfm")
            run([os.path.join(bindir, "qforge-compile"), onnx_path, "-o", qfm, "--target",
                 "cuda:sm_90" if a.device == "cuda" else "cpu", "--quiet"] + flags)
            info = run([os.path.join(bindir, "qforge-run"), qfm, "info"])
            size, unit = re.search(r"\(\d+ arguments, ([\d.]+) (B|KiB|MiB|GiB) of weights\)",
                                   info).groups()
            weight_bytes = float(size) * {"B": 1, "KiB": 2**10, "MiB": 2**20,
                                          "GiB": 2**30}[unit]
            modules.append((name, qfm, weight_bytes))
        for m in rows:
            for t in threads:
                base = None
                probes = {}
                ref = None
                if cublas:
                    ref = cublas_ms(m, k, n)
                    gbs = k * n * 2 / ref / 1e6
                    print(f"| {shape} | {m} | {t} | cuBLAS fp16 | {k * n * 2 / 2**20:.2f} | "
                          f"{ref:.3f} | - | 1.00x | {gbs:.1f} | {100 * gbs / hbm_gbs:.0f}% | "
                          f"{2.0 * m * k * n / ref / 1e6:.1f} |", flush=True)
                for name, qfm, weight_bytes in modules:
                    out = run([os.path.join(bindir, "qforge-run"), qfm, "bench", "--device",
                               a.device, "--iterations", str(a.iterations), "--dim", str(m),
                               "--threads", str(t)])
                    ms = float(re.search(r"median_ms ([\d.]+)", out).group(1))
                    base = base or ms
                    gbs = weight_bytes / ms / 1e6
                    if weight_bytes not in probes:
                        probes[weight_bytes] = probe_gbs(weight_bytes, t)
                    pct = (f"{100 * gbs / probes[weight_bytes]:.0f}%"
                           if probes[weight_bytes] else "-")
                    gflops = 2.0 * m * k * n / ms / 1e6
                    vs = f" {ref / ms:.2f}x |" if ref else ""
                    print(f"| {shape} | {m} | {t} | {name} | {weight_bytes / 2**20:.2f} | "
                          f"{ms:.3f} | {base / ms:.2f}x |{vs} {gbs:.1f} | {pct} | "
                          f"{gflops:.1f} |", flush=True)
