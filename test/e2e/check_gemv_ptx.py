#!/usr/bin/env python3
"""Checks the PTX of the CUDA warp GEMV kernels for the instructions that make them fast.

usage: check_gemv_ptx.py FILE.ptx --min-kernels N

Each `.entry fused_gemv*` must have: 128-bit global loads of the codes
(ld.global[.nc].v4 of 32-bit words), 128-bit shared-memory loads of the staged x,
lop3.b32 decodes (16 per 32 codes), f16x2 subtractions of the offset (LLVM writes them
as additions of its negation) and fused multiply-adds, the
5-step shfl.sync.bfly reduction, a barrier after the staging, and no local memory
(ld/st.local: spilled or indexed arrays). Prints each kernel's counts; exits 1 on a miss.
"""
import argparse
import re
import sys

NEEDS = [
    ("ld.global.v4", r"ld\.global(\.nc)?\.v4\.(u32|b32)", 1),
    ("ld.shared.v4", r"ld\.shared\.v4\.(u32|b32)", 4),
    ("lop3", r"lop3\.b32", 16),
    ("sub.f16x2", r"(sub|add)(\.rn)?\.f16x2", 16),
    ("fma.f16x2", r"fma\.rn\.f16x2", 12),
    ("mul.f16x2", r"mul(\.rn)?\.f16x2", 4),
    ("shfl.bfly", r"shfl\.sync\.bfly\.b32", 5),
    ("bar.sync", r"bar\.sync|barrier\.sync", 1),
]
FORBIDDEN = [("local memory", r"(ld|st)\.local")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ptx")
    parser.add_argument("--min-kernels", type=int, default=1)
    args = parser.parse_args()
    text = open(args.ptx).read()
    starts = [(m.start(), m.group(1)) for m in
              re.finditer(r"^\.visible \.entry (\w+)\(", text, re.M)]
    ok = True
    found = 0
    for i, (start, name) in enumerate(starts):
        if not name.startswith("fused_gemv"):
            continue
        found += 1
        end = starts[i + 1][0] if i + 1 < len(starts) else len(text)
        body = text[start:end]
        counts = {label: len(re.findall(rx, body)) for label, rx, _ in NEEDS}
        bad = [f"{label} {counts[label]} < {least}" for label, _, least in NEEDS
               if counts[label] < least]
        bad += [label for label, rx in FORBIDDEN if re.search(rx, body)]
        if found <= 3 or bad:
            print(f"{name}: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
        for b in bad:
            print(f"FAIL: {name}: {b}")
        ok = ok and not bad
    if found < args.min_kernels:
        print(f"FAIL: {found} fused_gemv kernels, at least {args.min_kernels} expected")
        ok = False
    if ok:
        print(f"OK: {found} warp GEMV kernels with 128-bit loads, lop3, f16x2 and shuffles")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
