"""compare_npy.py A.npy B.npy TOL: max |a - b| / max |a| must not exceed TOL."""
import sys

import numpy as np

a = np.load(sys.argv[1]).astype(np.float64)
b = np.load(sys.argv[2]).astype(np.float64)
tol = float(sys.argv[3])
if a.shape != b.shape:
    print(f"FAIL: shapes differ: {a.shape} vs {b.shape}")
    sys.exit(1)
d = np.abs(a - b).max() / max(np.abs(a).max(), 1e-30)
print(f"max relative difference {d:.3e} (limit {tol:g})")
print("PASS" if d <= tol else "FAIL")
sys.exit(0 if d <= tol else 1)
