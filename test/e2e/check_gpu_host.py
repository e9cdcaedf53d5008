#!/usr/bin/env python3
"""Checks that the host code of a CUDA lowering only allocates, copies and launches.

usage: check_gpu_host.py IR.mlir [--min-kernels N]

IR is the module after the kernels are formed and outlined (qforge-compile
--dump-ir, the file of qf-merge-gpu-modules). Host code is everything outside
gpu.module bodies. Allowed there: device allocations, frees, copies and launches
(gpu.alloc/dealloc/memcpy/launch_func/wait), views and metadata of buffers
(subview, expand/collapse_shape, reshape, cast, dim, ...), scalar index and
arithmetic ops, scf control flow, calls, and host buffers of index or i1 elements
with their loads and stores (shape operands of memref.reshape, the deallocation
helper's pointer lists). Any other op on the host (linalg, memref.copy, a load or
store of model data, math, vector) is reported and the check fails.
"""
import argparse
import re
import sys

ALLOWED = {
    "func.func", "func.return", "func.call",
    "gpu.alloc", "gpu.dealloc", "gpu.memcpy", "gpu.launch_func", "gpu.wait",
    "memref.subview", "memref.expand_shape", "memref.collapse_shape",
    "memref.reshape", "memref.cast", "memref.dim", "memref.reinterpret_cast",
    "memref.extract_strided_metadata", "memref.extract_aligned_pointer_as_index",
    "memref.view", "memref.rank",
    "scf.if", "scf.yield", "scf.for", "scf.condition", "scf.while",
    "affine.apply", "affine.min", "affine.max",
    "ub.poison",
}
ALLOWED_PREFIXES = ("arith.", "index.")
# Host buffers: index or i1 elements, one dimension.
BOOKKEEPING = re.compile(r"memref<(\?|\d+)x(index|i1)>")
HOST_BUFFER_OPS = {"memref.alloc", "memref.alloca", "memref.dealloc",
                   "memref.load", "memref.store"}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ir")
    parser.add_argument("--min-kernels", type=int, default=1)
    args = parser.parse_args()
    path, min_kernels = args.ir, args.min_kernels
    lines = open(path).read().split("\n")
    skip_start = re.compile(r"^\s*(gpu\.module|gpu\.binary)\b")
    op_re = re.compile(r'^\s*(?:%[^=]+= )?"?([a-z_0-9]+\.[a-z_0-9.]+)')
    skipping, level = False, 0
    histogram, bad, kernels = {}, [], 0
    for number, line in enumerate(lines, 1):
        if line.startswith("{-#"):
            break  # the file's resources (weights small enough to be printed)
        if re.match(r"^\s*gpu\.func @", line) and "kernel" in line:
            kernels += 1
        opens = line.count("{") - line.count("}")
        if skipping:
            level += opens
            if level <= 0:
                skipping = False
            continue
        if skip_start.match(line):
            level, skipping = opens, opens > 0
            continue
        m = op_re.match(line)
        if not m:
            continue
        op = m.group(1)
        histogram[op] = histogram.get(op, 0) + 1
        if op in ALLOWED or op.startswith(ALLOWED_PREFIXES):
            continue
        if op in HOST_BUFFER_OPS and BOOKKEEPING.search(line):
            continue
        bad.append(f"{path}:{number}: {line.strip()[:160]}")
    for op, count in sorted(histogram.items(), key=lambda kv: (-kv[1], kv[0])):
        print(f"host {op} {count}")
    print(f"kernels {kernels}")
    if bad:
        print(f"FAIL: {len(bad)} host ops that compute or touch model data:")
        for b in bad[:20]:
            print("  " + b)
        return 1
    if kernels < min_kernels:
        print(f"FAIL: {kernels} kernels, expected at least {min_kernels}")
        return 1
    print("OK: host code only allocates, copies and launches")
    return 0


if __name__ == "__main__":
    sys.exit(main())
