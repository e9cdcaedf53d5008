#!/usr/bin/python3
"""Quality table: validation perplexity and multiple-choice accuracy of the bundled
LLaMA-style model in float and quantized with each method and scheme, with bits per
weight and module size, all measured in this run. Writes a markdown table (stdout, and
--out FILE).

  bench/quality.py [--val-bytes 16384] [--nsamples 32] [--seqlen 256]
                   [--methods rtn,gptq,gptq-seq,awq] [--schemes 4g128,4g32,...]
                   [--squeezellm 3,4] [--sensitivities xtx,fisher]
                   [--task-items 300] [--out FILE]

Bits per weight count codes, scales and zero points of the quantized linear layers
(the layer table's bytes) over their parameters; the module size is the whole .qfm
(embedding and norms stay float). Perplexity is `qforge-run perplexity` with 256-byte
windows over the first --val-bytes bytes of models/data/val.txt (held out from training
and calibration); calibration draws --nsamples windows of --seqlen bytes from
models/data/calib.txt with seed 0. `gptq-seq` is GPTQ with --sequential (each stage of
linears calibrated on the model whose earlier stages are already quantized).
Accuracy is `qforge-run eval` (lm-evaluation-harness's acc_norm: the choice of highest
log-likelihood per byte) on the first --task-items items of models/data/tasks/
cloze.jsonl and next_sentence.jsonl (4 choices each: chance is 0.25).

--squeezellm BITS adds, per bit width, the steps of SqueezeLLM's ablation (its paper's
Figure 1): plain k-means per row (`--sensitivity none`), then for each weighting of
--sensitivities (diag(XᵀX) of the calibration inputs, and the Fisher information of
qf-fisher over the same calibration windows) the weighted k-means, plus 0.45% outliers,
plus 0.05% sensitive values; bits per weight then include the per-row tables and the CSR
arrays.
"""
import argparse
import math
import os
import re
import subprocess
import sys
import tempfile
import time

import onnx

root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
bindir = os.environ.get("QFORGE_BIN", os.path.join(root, "build", "bin"))
model = os.path.join(root, "models", "llama", "llama.onnx")

p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
p.add_argument("--val-bytes", type=int, default=16384)
p.add_argument("--nsamples", type=int, default=32)
p.add_argument("--seqlen", type=int, default=256)
p.add_argument("--methods", default="rtn,gptq,awq")
p.add_argument("--schemes", default=None, help="comma list of 4g128, 4g32, 3g128, 3pc, 2g32 "
               "(default: all)")
p.add_argument("--squeezellm", default="", help="comma list of bit widths for the SqueezeLLM "
               "ablation rows (default: none)")
p.add_argument("--sensitivities", default="xtx,fisher",
               help="comma list of the SqueezeLLM ablation's weightings: xtx, fisher")
p.add_argument("--task-items", type=int, default=300)
p.add_argument("--out", default=None)
a = p.parse_args()
TASKS = ["cloze", "next_sentence"]

SCHEMES = [("4-bit g128", 4, 128), ("4-bit g32", 4, 32), ("3-bit g128", 3, 128),
           ("3-bit per-channel", 3, -1), ("2-bit g32", 2, 32)]
SHORT = {"4-bit g128": "4g128", "4-bit g32": "4g32", "3-bit g128": "3g128",
         "3-bit per-channel": "3pc", "2-bit g32": "2g32"}
if a.schemes:
    SCHEMES = [s for s in SCHEMES if SHORT[s[0]] in a.schemes.split(",")]
CALIBRATED = {"gptq", "gptq-seq", "awq"}
LABELS = {"rtn": "RTN", "gptq": "GPTQ", "gptq-seq": "GPTQ seq", "awq": "AWQ"}


def linear_params():
    g = onnx.load(model, load_external_data=False).graph
    return sum(math.prod(t.dims) for t in g.initializer
               if t.name.endswith(".weight.T") and len(t.dims) == 2)


def compile_and_score(d, tag, args, val):
    qfm = os.path.join(d, tag + ".qfm")
    t0 = time.time()
    out = subprocess.run([os.path.join(bindir, "qforge-compile"), model, "-o", qfm] + args,
                         check=True, capture_output=True, text=True).stdout
    compile_s = time.time() - t0
    qbytes = sum(int(m.group(1)) for m in
                 re.finditer(r"^\S+\s+\S+\s+\d+\s+\S+\s+(\d+)\s", out, re.M))
    ppl = subprocess.run([os.path.join(bindir, "qforge-run"), qfm, "perplexity", "--text", val,
                          "--window", "256"], check=True, capture_output=True, text=True).stdout
    nats = float(re.search(r"nats/byte ([0-9.]+)", ppl).group(1))
    accs = []
    for task in TASKS:
        out = subprocess.run([os.path.join(bindir, "qforge-run"), qfm, "eval", "--task",
                              os.path.join(root, "models", "data", "tasks", task + ".jsonl"),
                              "--limit", str(a.task_items)],
                             check=True, capture_output=True, text=True).stdout
        accs.append(re.search(r"acc_norm ([0-9.]+ ± [0-9.]+)", out).group(1))
    return nats, qbytes, os.path.getsize(qfm), compile_s, accs


params = linear_params()
rows = []
with tempfile.TemporaryDirectory() as d:
    val = os.path.join(d, "val.txt")
    with open(os.path.join(root, "models", "data", "val.txt"), "rb") as src, \
            open(val, "wb") as dst:
        dst.write(src.read(a.val_bytes))
    nats, _, size, cs, accs = compile_and_score(d, "fp32", ["--method", "none"], val)
    base = nats
    rows.append(("FP32", "-", nats, 32.0, size, cs, accs))
    print(f"FP32: {nats:.4f} nats/byte ({cs:.0f} s)", file=sys.stderr, flush=True)
    for label, bits, group in SCHEMES:
        for method in [m for m in a.methods.split(",") if m]:
            args = ["--method", method.split("-")[0], "--bits", str(bits),
                    "--group-size", str(group)] + (["--sequential"] if method.endswith("-seq")
                                                   else [])
            if method in CALIBRATED:
                args += ["--calib", os.path.join(root, "models", "data", "calib.txt"),
                         "--nsamples", str(a.nsamples), "--seqlen", str(a.seqlen)]
            nats, qbytes, size, cs, accs = compile_and_score(d, f"{method}{bits}g{group}",
                                                             args, val)
            rows.append((LABELS[method], label, nats, 8.0 * qbytes / params, size, cs, accs))
            print(f"{method} {label}: {nats:.4f} nats/byte ({cs:.0f} s)", file=sys.stderr,
                  flush=True)

calib = ["--calib", os.path.join(root, "models", "data", "calib.txt"),
         "--nsamples", str(a.nsamples), "--seqlen", str(a.seqlen)]
SQUEEZE = [("k-means (unweighted)", ["--sensitivity", "none"])]
WEIGHTING = {"xtx": "diag(XᵀX)", "fisher": "Fisher"}
for w in [w for w in a.sensitivities.split(",") if w]:
    sens = calib + ["--sensitivity", w]
    SQUEEZE += [(f"SqueezeLLM, {WEIGHTING[w]}-weighted", sens),
                (f"+ 0.45% outliers ({WEIGHTING[w]})", sens + ["--outliers", "0.45"]),
                (f"+ 0.05% sensitive ({WEIGHTING[w]})",
                 sens + ["--outliers", "0.45", "--sensitive", "0.05"])]
with tempfile.TemporaryDirectory() as d:
    val = os.path.join(d, "val.txt")
    with open(os.path.join(root, "models", "data", "val.txt"), "rb") as src, \
            open(val, "wb") as dst:
        dst.write(src.read(a.val_bytes))
    for bits in [int(b) for b in a.squeezellm.split(",") if b]:
        for i, (label, extra) in enumerate(SQUEEZE):
            args = ["--method", "squeezellm", "--bits", str(bits)] + extra
            nats, qbytes, size, cs, accs = compile_and_score(d, f"sq{bits}.{i}", args, val)
            rows.append((label, f"{bits}-bit LUT", nats, 8.0 * qbytes / params, size, cs, accs))
            print(f"{label} {bits}-bit: {nats:.4f} nats/byte ({cs:.0f} s)", file=sys.stderr,
                  flush=True)

lines = [f"| method | scheme | nats/byte | perplexity | vs FP32 | bits/weight | module MiB | "
         f"cloze acc_norm | next-sentence acc_norm |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
for method, label, nats, bpw, size, _, accs in rows:
    lines.append(f"| {method} | {label} | {nats:.4f} | {math.exp(nats):.4f} | "
                 f"{100.0 * (math.exp(nats) / math.exp(base) - 1.0):+.2f}% | {bpw:.2f} | "
                 f"{size / 2**20:.2f} | {accs[0]} | {accs[1]} |")
text = "\n".join(lines) + "\n"
print(text)
if a.out:
    with open(a.out, "w") as fh:
        fh.write(text)
