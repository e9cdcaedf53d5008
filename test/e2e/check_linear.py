"""Checks a compiled one-layer module against independent computations.

1. y_run (the compiled module's output) equals x · Ŵᵀ + b to 1e-5 relative, where Ŵ is
   decoded here, in numpy, from the codes and scales stored in the module.
With the float model (--onnx, --y-float), also:
2. Ŵ is a round-to-nearest quantization of W: |W − Ŵ| ≤ scale/2 elementwise.
3. |y_float − y_run| ≤ Σ_k |x_k|·scale/2 (+ rounding slack), the bound RTN implies.
"""
import argparse
import sys

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, __import__("os").path.dirname(__file__))
import qfmlib  # noqa: E402

p = argparse.ArgumentParser()
p.add_argument("--onnx")
p.add_argument("--qfm", required=True)
p.add_argument("--x", required=True)
p.add_argument("--y-float")
p.add_argument("--y-run", required=True)
p.add_argument("--bits", type=int, required=True)
p.add_argument("--group-size", type=int, required=True)
a = p.parse_args()

mod = qfmlib.Module(a.qfm)
w = mod.weights_by_name()
codes = next(v for k, v in w.items() if k.endswith(".codes"))
scales = next(v for k, v in w.items() if k.endswith(".scales"))
zps = next((v for k, v in w.items() if k.endswith(".zero_points")), None)
bias = next((v for k, v in w.items() if v.ndim == 1), None)
N = codes.shape[0]
x = np.load(a.x).astype(np.float64)
K = x.shape[-1]
x = x.reshape(-1, K)
deq, s = qfmlib.dequantize(codes, scales, zps, a.bits, a.group_size, K)  # [N, K]
y_run = np.load(a.y_run).astype(np.float64).reshape(-1, N)
b = bias.astype(np.float64) if bias is not None else 0.0

ok = True
# A decode GEMV (at most 4 rows) with int8 activations computes with the activations
# rounded per 32 channels; `act_bound` is what that rounding can change in each output.
act_bound = 0.0
x_kernel = x
if qfmlib.gemv_activations(mod, a.bits, a.group_size) == "int8" and x.shape[0] <= 4:
    x_kernel, d = qfmlib.int8_activations(x.astype(np.float32))
    act_bound = (d / 2) @ np.abs(deq).T
y_deq = x_kernel @ deq.T + b
rel = np.abs(y_run - y_deq).max() / np.abs(y_deq).max()
print(f"kernel vs numpy decode: max relative difference {rel:.2e} (limit 1e-5)")
ok &= rel <= 1e-5
if not a.onnx:
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)

model = onnx.load(a.onnx)
inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
weight = next(v for v in inits.values() if v.ndim == 2).astype(np.float64)  # [K, N]
y_float = np.load(a.y_float).astype(np.float64).reshape(-1, N)

werr = np.abs(weight.T - deq) - s / 2
print(f"RTN property |W - Ŵ| <= scale/2: worst excess {werr.max():.2e}")
ok &= werr.max() <= 1e-6 * np.abs(weight).max()

bound = np.abs(x) @ (s / 2).T + act_bound + 1e-5 * np.abs(y_float).max()
diff = np.abs(y_float - y_run)
print(f"float vs quantized: max |dy| {diff.max():.4e}, tightest bound {bound.min():.4e}, "
      f"max ratio |dy|/bound {(diff / bound).max():.3f}")
ok &= bool((diff <= bound).all())
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
