#!/usr/bin/env python3
"""Checks the numerics of the CUDA target's warp GEMV (2, 4, 8 bits) without a GPU.

`qforge-compile --emulate-cuda-gemv` makes a CPU module whose fused matmuls run the
warp GEMV's per-lane code (emitted by the same generator as the kernel) for the 32
lanes and then its butterfly reduction, with the kernel's tiles of rows of x (4 rows,
2 at K 8192; a single row when x has one). For one-layer models (RTN, dynamic batch) this
script compares that module's output with:

1. an independent numpy model of the kernel's arithmetic, written from its
   specification: x rounded to f16 and stored in pair order, each word's codes j and
   j + W/2 (W codes per word) decoded as the f16 pair 1024 + code (the 0x6400 trick)
   minus 1024 + zero, f16 products summed per word (the first a product, then fused
   multiply-adds), the two f16 halves widened and summed in f32 per 4-word chunk,
   scaled per chunk, a lane's chunks c = lane + 32 i, then lanes summed pairwise by the butterfly
   (offsets 16, 8, 4, 2, 1). The module must agree within 1e-6 relative (the CPU's f16
   fused multiply-add rounds through f32, as this model does);
2. the exact product x · Ŵᵀ + b in float64 (Ŵ decoded from the module's codes, scales
   and zero points): the f16 rounding must stay within 2e-3 relative to max |y|;
3. with schemes the warp GEMV does not take (4-bit groups of 16, 3 bits), the module
   computes what the ordinary CPU kernel computes (1e-5 relative to the exact product).

usage: check_warp_gemv.py WORKDIR
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
    (4, 32, True, 256, 24, True, "4-bit g32 symmetric: fewer chunks than lanes"),
    (4, 128, False, 2048, 40, False, "4-bit g128 zero points: two chunks for some lanes"),
    (4, 32, False, 4096, 20, True, "4-bit g32 zero points: four steps per lane"),
    (4, -1, True, 1024, 17, True, "4-bit per channel"),
    (4, 0, False, 512, 9, False, "4-bit per tensor with a zero point"),
    (8, 64, False, 1024, 12, True, "8-bit g64 zero points"),
    (8, -1, True, 768, 10, False, "8-bit per channel"),
    (2, 64, False, 2048, 15, True, "2-bit g64 zero points"),
    (2, 128, True, 4096, 9, False, "2-bit g128 symmetric"),
    (4, 128, False, 8192, 6, True, "4-bit g128, K 8192: tiles of 2 rows"),
]
FALLBACK = [(4, 16, True, 96, 10, True, "4-bit g16: not the warp GEMV"),
            (3, 32, False, 256, 11, True, "3-bit: not the warp GEMV")]
# 1 row: the kernel's one-row path; 3: one tile with a missing row; 6: two tiles.
ROWS = [1, 3, 6]

f16, f32 = np.float16, np.float32


def kernel_model(x, codes, scales, zps, bits, group, K, bias):
    """The warp GEMV's arithmetic, lane by lane, for all rows and channels at once."""
    M, N = x.shape[0], codes.shape[0]
    per_word, per_lane = 32 // bits, 128 // bits
    pairs, mask = per_word // 2, (1 << bits) - 1
    groups = 1 if group <= 0 else K // group
    gsize = K if group <= 0 else group
    xs = x.astype(f16)  # RNE, as arith.truncf
    sc = np.broadcast_to(scales.astype(f32), (N, groups)) if scales.size > 1 \
        else np.full((N, groups), scales.astype(f32).reshape(()), f32)
    if zps is not None:
        z = zps.view(np.uint8).astype(np.int64)
        z = np.broadcast_to(z, (N, groups)) if z.size > 1 else np.full((N, groups),
                                                                      z.item())
        off = (1024 + z).astype(f16)
    else:
        off = np.full((N, groups), 1024 + (1 << (bits - 1)), f16)
    words = codes.view(np.uint32).astype(np.uint64)
    parts = np.zeros((32, M, N), f32)
    for lane in range(32):
        acc = np.zeros((M, N), f32)
        for c in range(lane, K // per_lane, 32):
            g = (per_lane * c) // gsize
            chunk = np.zeros((M, N), f32)
            for w in range(4):
                word = words[:, 4 * c + w]  # [N]
                h = None
                for j in range(pairs):
                    lo = ((word >> (bits * j)) & mask) + 1024
                    hi = ((word >> (16 + bits * j)) & mask) + 1024
                    dlo = (lo.astype(f16) - off[:, g]).astype(f16)  # exact
                    dhi = (hi.astype(f16) - off[:, g]).astype(f16)
                    k = per_lane * c + per_word * w + j
                    xlo, xhi = xs[:, k][:, None], xs[:, k + pairs][:, None]
                    if h is None:
                        h = [(dlo[None, :] * xlo).astype(f16),
                             (dhi[None, :] * xhi).astype(f16)]
                    else:
                        h = [(dlo[None, :].astype(f32) * xlo.astype(f32)
                              + h[0].astype(f32)).astype(f16),
                             (dhi[None, :].astype(f32) * xhi.astype(f32)
                              + h[1].astype(f32)).astype(f16)]
                both = (h[0].astype(f32) + h[1].astype(f32)).astype(f32)
                chunk = (chunk + both).astype(f32)
            acc = (acc + (sc[:, g][None, :] * chunk).astype(f32)).astype(f32)
        parts[lane] = acc
    v = parts
    for offset in (16, 8, 4, 2, 1):
        v = (v + v[np.arange(32) ^ offset]).astype(f32)
    y = v[0]
    if bias is not None:
        y = (y + bias.astype(f32)).astype(f32)
    return y.astype(np.float64)


def main():
    work = sys.argv[1]
    os.makedirs(work, exist_ok=True)
    ok = True
    rng = np.random.default_rng(11)
    for i, (bits, group, sym, K, N, has_bias, why) in enumerate(CASES + FALLBACK):
        fallback = i >= len(CASES)
        onnx_path = os.path.join(work, f"w{i}.onnx")
        qfm_path = os.path.join(work, f"w{i}.qfm")
        make = [sys.executable, os.path.join(MODELS, "linear", "make_linear.py"),
                onnx_path, "--in", str(K), "--out", str(N), "--dynamic-batch",
                "--seed", str(100 + i)]
        if has_bias:
            make.append("--bias")
        run(make)
        run(["qforge-compile", onnx_path, "-o", qfm_path, "--method", "rtn", "--bits",
             str(bits), "--group-size", str(group), f"--sym={'true' if sym else 'false'}",
             "--target", "cpu", "--activations", "f32", "--emulate-cuda-gemv",
             "--quiet"])
        mod = qfmlib.Module(qfm_path)
        w = mod.weights_by_name()
        codes = next(v for k, v in w.items() if k.endswith(".codes"))
        scales = next(v for k, v in w.items() if k.endswith(".scales"))
        zps = next((v for k, v in w.items() if k.endswith(".zero_points")), None)
        bias = next((v for v in w.values() if v.ndim == 1), None)
        deq, _ = qfmlib.dequantize(codes, scales, zps, bits, group, K)
        worst_model = worst_exact = 0.0
        for M in ROWS:
            x = (rng.standard_normal((M, K)) * 2).astype(np.float32)
            y = qfmlib.run_on_threads(qfm_path, x, work, f"w{i}.m{M}", threads=(1,))[0]
            exact = x.astype(np.float64) @ deq.T + \
                (bias.astype(np.float64) if bias is not None else 0.0)
            scale = np.abs(exact).max()
            worst_exact = max(worst_exact, np.abs(y - exact).max() / scale)
            if not fallback:
                model = kernel_model(x, codes, scales, zps, bits, group, K, bias)
                worst_model = max(worst_model, np.abs(y - model).max() / scale)
        if fallback:
            good = worst_exact <= 1e-5
            print(f"case {i} {why}: vs exact {worst_exact:.2e} (limit 1e-5) "
                  f"{'ok' if good else 'FAIL'}")
        else:
            good = worst_model <= 1e-6 and worst_exact <= 2e-3
            print(f"case {i} {why} (group {group}, K {K}, N {N}): vs kernel model "
                  f"{worst_model:.2e} (limit 1e-6), vs exact {worst_exact:.2e} "
                  f"(limit 2e-3) {'ok' if good else 'FAIL'}")
        ok = ok and good
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
