"""Checks qf-grad's gradients of a bundled model against torch's.

REFS is test/e2e/Inputs/grad_<model>.npz (make_grad_refs.py); LOSS and GRADS are what
the compiled gradient function returned for the same tokens: LOSS a .npy, GRADS a folder
of grad.<weight>.npy. Checks:
  - the loss within 1e-5 relative of torch's;
  - every weight's gradient: norm within 1e-3 relative, and its projections on two
    seeded random unit directions within 1e-3 of the gradient's norm (which a relative
    error of at most 1e-3 implies);
  - the weights with a whole reference gradient: cosine > 0.9999 and
    ‖ours − torch‖ / ‖torch‖ <= 1e-3.
Prints one line per weight with the whole gradient, then PASS or FAIL lines.

usage: check_grad.py REFS LOSS GRADS
       check_grad.py --ids REFS OUT.npy   (writes the reference's token window)
"""
import os
import sys

import numpy as np


def directions(name, shape):
    """Two unit directions, the same for the generator and the checker."""
    seed = [ord(c) for c in name]
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(2):
        d = rng.standard_normal(shape)
        out.append(d / np.linalg.norm(d))
    return out


def main():
    if sys.argv[1] == "--ids":
        np.save(sys.argv[3], np.load(sys.argv[2])["ids"])
        return
    refs = np.load(sys.argv[1])
    loss = float(np.load(sys.argv[2]).reshape(-1)[0])
    folder = sys.argv[3]
    failures = []
    ref_loss = float(refs["loss"])
    if abs(loss - ref_loss) > 1e-5 * abs(ref_loss):
        failures.append(f"loss {loss:.7f}, torch {ref_loss:.7f}")
    print(f"loss {loss:.6f} torch {ref_loss:.6f}")
    for name in refs["names"]:
        name = str(name)
        path = os.path.join(folder, f"grad.{name}.npy")
        if not os.path.exists(path):
            failures.append(f"{name}: no gradient")
            continue
        g = np.load(path).astype(np.float64)
        norm = float(refs["norm:" + name])
        if g.shape != directions(name, g.shape)[0].shape or not np.all(np.isfinite(g)):
            failures.append(f"{name}: shape {g.shape} or non-finite values")
            continue
        if abs(np.linalg.norm(g) - norm) > 1e-3 * norm:
            failures.append(f"{name}: norm {np.linalg.norm(g):.6g}, torch {norm:.6g}")
        for d, p in zip(directions(name, g.shape), refs["proj:" + name]):
            if abs((g * d).sum() - p) > 1e-3 * norm:
                failures.append(f"{name}: projection {(g * d).sum():.6g}, torch {p:.6g}")
        if "grad:" + name in refs:
            r = refs["grad:" + name].astype(np.float64)
            if r.shape != g.shape:
                failures.append(f"{name}: shape {g.shape}, torch {r.shape}")
                continue
            cos = (g * r).sum() / (np.linalg.norm(g) * np.linalg.norm(r))
            rel = np.linalg.norm(g - r) / np.linalg.norm(r)
            print(f"{name}: cosine {cos:.8f} relative error {rel:.2e}")
            if not (cos > 0.9999 and rel <= 1e-3):
                failures.append(f"{name}: cosine {cos:.8f}, relative error {rel:.2e}")
    for f in failures:
        print("FAIL", f)
    print("PASS" if not failures else "FAIL")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
