"""Checks a SqueezeLLM module's weights against the ONNX model they came from.

For every codebook layer of MODULE (compiled from MODEL with --method squeezellm), decodes
the packed codes through the per-row table (qfmlib, independent of the C++ code) and adds
the CSR outliers, then checks, against the model's float weight W (rows = output
channels):
  - at each outlier position the decoded weight equals W (1e-6 relative to the row's
    largest weight): dense + sparse is exact there;
  - every other weight decodes to the table entry nearest to it (ties allowed; with an
    f16 table, up to the rounding of the entries to f16);
  - with --unweighted (the module was compiled with --sensitivity none): each table
    entry that has weights is their mean (the table is a fixed point of Lloyd's
    iteration, which every k-means optimum is), to 1e-4 of the row's range;
  - the number of outliers is OUTLIERS percent of all weights (within 10% of it), and
    matches the manifest's per-layer counts.
Layers whose CSR arrays are too small to be stored as weight sections are checked only
for the nearest-entry property (their outliers are constants in the code).

usage: check_squeezellm.py MODEL MODULE OUTLIERS [--unweighted]
"""
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, os.path.dirname(__file__))
import qfmlib  # noqa: E402


def main():
    model, module, percent = sys.argv[1], sys.argv[2], float(sys.argv[3])
    unweighted = "--unweighted" in sys.argv
    inits = {t.name: numpy_helper.to_array(t) for t in onnx.load(model).graph.initializer}
    mod = qfmlib.Module(module)
    weights = mod.weights_by_name()
    ok = True
    total_weights = total_outliers = checked_csr = 0
    for layer in mod.manifest["layers"]:
        name, bits, K = layer["name"], layer["bits"], layer["cols"]
        if layer.get("scheme") != "codebook":
            print(f"{name}: not a codebook layer")
            ok = False
            continue
        W = inits[name].astype(np.float64).T  # [N, K]
        codes = qfmlib.unpack_codes(weights[name + ".codes"], K, bits)
        half = weights[name + ".lut"].dtype == np.float16
        lut = weights[name + ".lut"].astype(np.float64)
        # An f16 table's entries are the k-means entries rounded to the nearest f16
        # value (relative error at most 2^-11): weights keep their cluster, so a
        # weight may sit that much nearer another entry.
        rounding = (2.0 ** -11 * np.abs(lut).max(axis=1, keepdims=True)
                    if half else np.zeros((lut.shape[0], 1)))
        N = W.shape[0]
        decoded = np.take_along_axis(lut, codes, axis=1)
        mask = np.zeros(W.shape, bool)
        count = layer.get("outliers", 0)
        total_weights += W.size
        total_outliers += count
        if name + ".row_ptr" in weights and name + ".values" in weights:
            row_ptr = weights[name + ".row_ptr"]
            cols = weights[name + ".col_idx"]
            vals = weights[name + ".values"].astype(np.float64)
            if row_ptr[-1] != count or len(vals) != count:
                print(f"{name}: {row_ptr[-1]} stored outliers, manifest says {count}")
                ok = False
            rows = np.repeat(np.arange(N), np.diff(row_ptr))
            np.add.at(decoded, (rows, cols), vals)
            mask[rows, cols] = True
            scale = np.abs(W).max(axis=1, keepdims=True)
            err = (np.abs(decoded - W) / scale)[mask]
            if err.size and err.max() > 1e-6:
                print(f"{name}: outliers not exact, max rel diff {err.max():.2e}")
                ok = False
            checked_csr += 1
        # Dense weights: the nearest entry of the row's table.
        dist = np.abs(W[:, :, None] - lut[:, None, :])
        best = dist.min(axis=2)
        got = np.abs(W - decoded)
        slack = 1e-6 * (np.abs(W).max(axis=1, keepdims=True)) + 2 * rounding
        bad = (~mask) & (got > best + slack)
        # Outliers kept as code constants: skip their positions (the largest |w|).
        if count and not mask.any():
            bad &= np.abs(W) < np.sort(np.abs(W).ravel())[-count]
        if bad.any():
            print(f"{name}: {int(bad.sum())} weights not at their nearest table entry")
            ok = False
        if unweighted and (count == 0 or mask.any()):
            E = lut.shape[1]
            keep = ~mask
            slot = (np.arange(N)[:, None] * E + codes)[keep]
            sums = np.bincount(slot, W[keep], minlength=N * E).reshape(N, E)
            counts = np.bincount(slot, minlength=N * E).reshape(N, E)
            span = (W.max(axis=1) - W.min(axis=1))[:, None]
            used = counts > 0
            means = sums / np.maximum(counts, 1)
            worst = (np.maximum(np.abs(means - lut) - rounding, 0) / span)[used].max()
            if worst > 1e-4:
                print(f"{name}: a table entry is not the mean of its weights "
                      f"({worst:.2e} of the row's range)")
                ok = False
    fraction = 100.0 * total_outliers / total_weights
    print(f"layers {len(mod.manifest['layers'])}, with stored CSR {checked_csr}, "
          f"outliers {total_outliers} = {fraction:.3f}% of {total_weights}")
    if checked_csr == 0 or abs(fraction - percent) > 0.1 * percent:
        print(f"outliers are {fraction:.3f}%, expected {percent}%")
        ok = False
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
