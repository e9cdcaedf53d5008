"""Checks qf-fisher's `qf.fisher` of one weight against torch.

FISHER_MLIR is qf-fisher's output for the bundled llama imported with the length 64,
run on a calibration text of 65 bytes (the first 65 of the held-out text) with NSAMPLES
sequences: every window starts at byte 0 or 1, so the Fisher information must be
a·g0² + (1 − a)·g1², with g0 and g1 torch's gradients of the two windows (REFS, from
make_grad_refs.py) and a = (windows at byte 0) / NSAMPLES. Checks that one such a in
(0, 1) fits within 2e-3 relative (so both windows were drawn, each squared before the
mean; the square of the mean gradient is several percent off), and prints it.

usage: check_fisher.py REFS FISHER_MLIR WEIGHT NSAMPLES
"""
import re
import sys

import numpy as np


def read_blob(mlir_path, key):
    with open(mlir_path) as f:
        text = f.read()
    m = re.search(re.escape(key) + r': "0x([0-9A-Fa-f]+)"', text)
    if not m:
        sys.exit(f"FAIL: no resource '{key}' in {mlir_path}")
    raw = bytes.fromhex(m.group(1))
    return np.frombuffer(raw[4:], dtype="<f4")  # after the alignment word


def main():
    refs = np.load(sys.argv[1])
    weight, n = sys.argv[3], int(sys.argv[4])
    g0 = refs["grad:" + weight].astype(np.float64)
    g1 = refs["later:" + weight].astype(np.float64)
    f = read_blob(sys.argv[2], weight + ".fisher").astype(np.float64)
    if f.size != g0.size:
        sys.exit(f"FAIL: {f.size} Fisher values, expected {g0.size}")
    f = f.reshape(g0.shape)
    best = None
    for k in range(n + 1):
        a = k / n
        ref = a * g0 ** 2 + (1 - a) * g1 ** 2
        rel = np.linalg.norm(f - ref) / np.linalg.norm(ref)
        if best is None or rel < best[1]:
            best = (k, rel)
    k, rel = best
    mean_sq = (k / n * g0 + (1 - k / n) * g1) ** 2
    off = np.linalg.norm(f - mean_sq) / np.linalg.norm(f)
    print(f"{weight}: {k} of {n} windows at byte 0, relative error {rel:.2e} "
          f"(square of the mean gradient: {off:.2e} off)")
    ok = 0 < k < n and rel <= 2e-3
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
