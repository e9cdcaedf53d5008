"""Checks the CPU kernels of qf.fused_matmul numerically, variant by variant.

For each scheme below, a one-layer model with a dynamic number of rows is compiled
(RTN) and run at several M: M <= 4 takes the GEMV kernel, larger M the GEMM kernel
(8- and 1-row micro-kernels, so M = 19 also covers the row tail). Each output is
compared with x · Ŵᵀ + b, where Ŵ is decoded here in numpy from the codes, scales and
zero points stored in the module (relative difference <= 1e-5). Each case also runs on
1 and on 2 threads, whose outputs must agree to 1e-5 relative.

The shapes are chosen so that: K is not a multiple of the vector block (masked last
block) nor of 32 (a partial unit) nor of the 256-channel GEMM panel; N is not a
multiple of the 2-vector GEMM tile; 3-bit codes straddle 32-bit words; groups are
smaller than, equal to and larger than a vector block; 8-bit codes have zero points.
Layers of at least 2^17 weights run their outer loop on threads ("threads" cases).

usage: check_kernels.py WORKDIR [--quick]
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import qfmlib  # noqa: E402
from qfmlib import run  # noqa: E402

MODELS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))), "models")

# (bits, group size (-1 per channel, 0 per tensor), symmetric, K, N, bias, why)
CASES = [
    (4, 32, True, 384, 48, True, "4-bit g32: one masked block"),
    (4, 128, True, 1024, 40, False, "4-bit g128: full blocks, 4 groups per block"),
    (4, 512, True, 2048, 24, True, "4-bit g512: a group spans the whole block"),
    (4, 32, False, 2048, 64, True, "4-bit g32 zero points, threads"),
    (3, 128, False, 1000, 133, True, "3-bit straddling codes, ragged K and N, threads"),
    (3, -1, True, 96, 70, False, "3-bit per channel"),
    (2, 64, False, 640, 205, True, "2-bit g64 zero points, threads"),
    (8, -1, False, 300, 20, True, "8-bit per channel, zero points, partial unit"),
    (8, 0, True, 256, 16, False, "8-bit per tensor"),
    (8, 512, False, 1024, 12, True, "8-bit g512 zero points: one group per block"),
    (4, 16, True, 100, 10, True, "4-bit g16: scalar kernel (groups below 32)"),
    (3, 16, False, 106, 13, True, "3-bit g16 zero points: scalar kernel, code by code "
     "across words"),
    (8, 16, False, 80, 9, False, "8-bit g16 zero points: scalar kernel"),
]
ROWS = [1, 3, 4, 5, 19, 70]


def main():
    work = sys.argv[1]
    os.makedirs(work, exist_ok=True)
    ok = True
    rng = np.random.default_rng(7)
    for i, (bits, group, sym, K, N, bias, why) in enumerate(CASES):
        onnx_path = os.path.join(work, f"c{i}.onnx")
        qfm_path = os.path.join(work, f"c{i}.qfm")
        make = [sys.executable, os.path.join(MODELS, "linear", "make_linear.py"),
                onnx_path, "--in", str(K), "--out", str(N), "--dynamic-batch",
                "--seed", str(i)]
        if bias:
            make.append("--bias")
        run(make)
        compile_flags = ["--method", "rtn", "--bits", str(bits), "--group-size",
                         str(group), f"--sym={'true' if sym else 'false'}",
                         "--target", "cpu", "--quiet"]
        run(["qforge-compile", onnx_path, "-o", qfm_path, "--activations", "f32"]
            + compile_flags)
        mod = qfmlib.Module(qfm_path)
        w = mod.weights_by_name()
        codes = next(v for k, v in w.items() if k.endswith(".codes"))
        scales = next(v for k, v in w.items() if k.endswith(".scales"))
        zps = next((v for k, v in w.items() if k.endswith(".zero_points")), None)
        b = next((v for v in w.values() if v.ndim == 1), None)
        deq, _ = qfmlib.dequantize(codes, scales, zps, bits, group, K)
        bias = b.astype(np.float64) if b is not None else 0.0

        def check(module, rows, reference, label):
            nonlocal ok
            worst = worst_threads = 0.0
            for M in rows:
                x = rng.standard_normal((M, K)).astype(np.float32)
                outs = qfmlib.run_on_threads(module, x, work, f"c{i}.m{M}")
                ref, bound = reference(x)
                scale = np.abs(ref).max()
                rel = np.abs(outs[0] - ref).max() / scale
                rel_t = np.abs(outs[0] - outs[1]).max() / scale
                worst = max(worst, rel)
                worst_threads = max(worst_threads, rel_t)
                y_float = x.astype(np.float64) @ deq.T + bias
                within = bound is None or bool(
                    (np.abs(outs[0] - y_float) <= bound + 1e-5 * scale).all())
                if rel > 1e-5 or rel_t > 1e-5 or not within or \
                        not np.isfinite(outs[1]).all():
                    ok = False
                    print(f"  {label} M={M}: vs reference {rel:.2e}, 1 vs 2 threads "
                          f"{rel_t:.2e}, within the int8 bound: {within}")
            status = "ok" if worst <= 1e-5 and worst_threads <= 1e-5 else "FAIL"
            print(f"case {i} {label} {why} (bits {bits}, group {group}, K {K}, N {N}): "
                  f"max rel diff {worst:.2e}, threads {worst_threads:.2e} {status}")

        def exact(x):
            return x.astype(np.float64) @ deq.T + bias, None

        def int8(x):
            xr, d = qfmlib.int8_activations(x)
            return xr @ deq.T + bias, (d / 2) @ np.abs(deq).T * (1 + 1e-6)

        check(qfm_path, ROWS, exact, "f32")
        if 8 % bits == 0 and group not in (16,):
            q8 = os.path.join(work, f"c{i}.int8.qfm")
            run(["qforge-compile", onnx_path, "-o", q8, "--activations", "int8"]
                + compile_flags)
            m8 = qfmlib.Module(q8)
            act = qfmlib.gemv_activations(m8, bits, group)
            act_gemm = qfmlib.gemv_activations(m8, bits, group, "gemm")
            gemv = int8 if act == "int8" else exact
            gemm = int8 if act_gemm == "int8" else exact
            check(q8, [1, 3, 5, 19], lambda x: gemv(x) if x.shape[0] <= 4 else gemm(x),
                  f"{act}/{act_gemm}-act")
    # Float weights (qf-lower-float-matmul): the streaming GEMV, one body per
    # row count 1 .. 4 (split-K over threads at K 1000), and the GEMM
    # micro-kernel above; ragged K and N; N 1029 makes groups of two tiles
    # (the last group holds one ragged tile).
    import onnx
    from onnx import numpy_helper
    for K, N in ((1000, 133), (96, 20), (300, 1029)):
        onnx_path = os.path.join(work, f"f{K}.onnx")
        qfm_path = os.path.join(work, f"f{K}.qfm")
        run([sys.executable, os.path.join(MODELS, "linear", "make_linear.py"), onnx_path,
             "--in", str(K), "--out", str(N), "--dynamic-batch", "--bias"])
        run(["qforge-compile", onnx_path, "-o", qfm_path, "--method", "none",
             "--target", "cpu", "--quiet"])
        inits = {t.name: numpy_helper.to_array(t)
                 for t in onnx.load(onnx_path).graph.initializer}
        W = inits["fc.weight"].astype(np.float64)
        bias = inits["fc.bias"].astype(np.float64)
        worst = worst_threads = 0.0
        for M in sorted(set(ROWS) | {2}):
            x = rng.standard_normal((M, K)).astype(np.float32)
            outs = qfmlib.run_on_threads(qfm_path, x, work, f"f{K}.m{M}")
            ref = x.astype(np.float64) @ W + bias
            scale = np.abs(ref).max()
            worst = max(worst, np.abs(outs[0] - ref).max() / scale)
            worst_threads = max(worst_threads, np.abs(outs[0] - outs[1]).max() / scale)
        good = worst <= 1e-5 and worst_threads <= 1e-5
        ok &= good
        print(f"float K {K} N {N}: max rel diff {worst:.2e}, threads {worst_threads:.2e} "
              f"{'ok' if good else 'FAIL'}")
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
