#!/usr/bin/env python3
"""Checks the numerics of the CUDA target's warp GEMV (affine 2/4/8 bits, codebooks, CSR) without a GPU.

`qforge-compile --emulate-cuda` makes a CPU module whose fused matmuls run the
warp GEMV's per-lane code (emitted by the same generator as the kernel) for the 32
lanes and then its butterfly reduction, with the kernel's tiles of rows of x (4 rows,
2 at K 8192; a single row when x has one). For one-layer models (RTN, dynamic batch) this
script compares that module's output with:

1. an independent numpy model of the kernel's arithmetic, written from its
   specification: x rounded to f16 and stored in pair order, each word's codes j and
   j + W/2 (W codes per word) decoded as the f16 pair 1024 + code (the 0x6400 trick)
   minus 1024 + zero, f16 products summed per word (the first a product, then fused
   multiply-adds), the two f16 halves widened and summed in f32 per 4-word chunk,
   scaled per chunk, a lane's chunks c = lane + 32 i; for codebooks (written as graph
   IR), f32 fused multiply-adds of x and the row's table entry in the same lane order;
   CSR outliers: lane l adds nonzeros l, l + 32, ... of the row (f32 fused
   multiply-adds); then lanes summed pairwise by the butterfly
   (offsets 16, 8, 4, 2, 1). The module must agree within 1e-6 relative (the CPU's f16
   fused multiply-add rounds through f32, as this model does);
2. the exact product x · Ŵᵀ + b in float64 (Ŵ decoded from the module's codes, scales
   and zero points, plus its CSR outliers): the f16 rounding must stay within 2e-3
   relative to max |y| (codebooks, computed in f32: 1e-5);
3. with schemes the warp GEMV does not take (4-bit groups of 16, 3-bit affine), the module
   computes what the ordinary CPU kernel computes (1e-5 relative to the exact product).

usage: check_warp_gemv.py WORKDIR
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import codebook_kernels  # noqa: E402
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
            (3, 32, False, 256, 11, True, "3-bit affine: not the warp GEMV")]
# 1 row: the kernel's one-row path; 3: one tile with a missing row; 6: two tiles.
ROWS = [1, 3, 6]

f16, f32, f64 = np.float16, np.float32, np.float64

# Codebook modules, written as graph IR (codebook_kernels.py's layout): (bits, table
# type, K, N, outlier density, why)
CODEBOOK = [
    (4, "f32", 1024, 24, 0.01, "4-bit codebook, f32 table, CSR outliers"),
    (3, "f16", 544, 20, 0.02, "3-bit codebook (3-word units), f16 table, CSR outliers"),
    (2, "f32", 512, 9, 0.0, "2-bit codebook, no outliers"),
]
# RTN modules with --outliers 1 (affine codes plus CSR): (bits, group, K, N, why)
AFFINE_OUTLIERS = [(4, 32, 1024, 16, "4-bit g32 with 1 % CSR outliers")]


def fma(a, b, c):
    """f32 fused multiply-add (through f64: exact product, one rounding per step)."""
    return (a.astype(f64) * b.astype(f64) + c.astype(f64)).astype(f32)


def affine_parts(x, codes, scales, zps, bits, group, K):
    """Each lane's f32 sum over its steps, [32, M, N]: the f16 decode and products."""
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
                        # The CPU's f16 fused multiply-add rounds through f32.
                        h = [(dlo[None, :].astype(f32) * xlo.astype(f32)
                              + h[0].astype(f32)).astype(f16),
                             (dhi[None, :].astype(f32) * xhi.astype(f32)
                              + h[1].astype(f32)).astype(f16)]
                both = (h[0].astype(f32) + h[1].astype(f32)).astype(f32)
                chunk = (chunk + both).astype(f32)
            acc = (acc + (sc[:, g][None, :] * chunk).astype(f32)).astype(f32)
        parts[lane] = acc
    return parts


def codebook_parts(x, codes, lut, bits, K):
    """Each lane's f32 sum of x · table entry over its steps, [32, M, N]."""
    M, N = x.shape[0], codes.shape[0]
    per_lane = 32 if bits == 3 else 128 // bits
    table = lut.astype(f32)
    rows = np.arange(N)
    parts = np.zeros((32, M, N), f32)
    for lane in range(32):
        acc = np.zeros((M, N), f32)
        for c in range(lane, K // per_lane, 32):
            for k in range(per_lane * c, per_lane * (c + 1)):
                acc = fma(x[:, k][:, None], table[rows, codes[:, k]][None, :], acc)
        parts[lane] = acc
    return parts


def add_outliers(parts, x, row_ptr, col_idx, values):
    """Lane l adds nonzeros l, l + 32, ... of each row."""
    for n in range(len(row_ptr) - 1):
        for lane in range(32):
            for j in range(row_ptr[n] + lane, row_ptr[n + 1], 32):
                parts[lane][:, n] = fma(np.array(values[j], f32), x[:, col_idx[j]],
                                        parts[lane][:, n])


def reduce(parts, bias):
    v = parts
    for offset in (16, 8, 4, 2, 1):
        v = (v + v[np.arange(32) ^ offset]).astype(f32)
    y = v[0]
    if bias is not None:
        y = (y + bias.astype(f32)).astype(f32)
    return y.astype(f64)


def compare(label, qfm, work, rng, K, exact_of, model_of, tag, exact_limit=2e-3):
    worst_model = worst_exact = 0.0
    for M in ROWS:
        x = (rng.standard_normal((M, K)) * 2).astype(np.float32)
        y = qfmlib.run_on_threads(qfm, x, work, f"{tag}.m{M}", threads=(1,))[0]
        exact = exact_of(x)
        scale = np.abs(exact).max()
        worst_exact = max(worst_exact, np.abs(y - exact).max() / scale)
        if model_of:
            worst_model = max(worst_model, np.abs(y - model_of(x)).max() / scale)
    if not model_of:
        good = worst_exact <= 1e-5
        print(f"{label}: vs exact {worst_exact:.2e} (limit 1e-5) "
              f"{'ok' if good else 'FAIL'}")
    else:
        good = worst_model <= 1e-6 and worst_exact <= exact_limit
        print(f"{label}: vs kernel model {worst_model:.2e} (limit 1e-6), vs exact "
              f"{worst_exact:.2e} (limit {exact_limit:g}) {'ok' if good else 'FAIL'}")
    return good


def sparse(row_ptr, col_idx, values, N, K):
    S = np.zeros((N, K))
    for n in range(N):
        for j in range(row_ptr[n], row_ptr[n + 1]):
            S[n, col_idx[j]] += values[j]
    return S


def main():
    work = sys.argv[1]
    os.makedirs(work, exist_ok=True)
    ok = True
    rng = np.random.default_rng(11)
    rtn = [(b, g, sym, K, N, bias, why, 0) for b, g, sym, K, N, bias, why in CASES] + \
        [(b, g, sym, K, N, bias, why, 1) for b, g, sym, K, N, bias, why in FALLBACK] + \
        [(b, g, True, K, N, True, why, 2) for b, g, K, N, why in AFFINE_OUTLIERS]
    for i, (bits, group, sym, K, N, has_bias, why, kind) in enumerate(rtn):
        onnx_path = os.path.join(work, f"w{i}.onnx")
        qfm_path = os.path.join(work, f"w{i}.qfm")
        make = [sys.executable, os.path.join(MODELS, "linear", "make_linear.py"),
                onnx_path, "--in", str(K), "--out", str(N), "--dynamic-batch",
                "--seed", str(100 + i)]
        if has_bias:
            make.append("--bias")
        run(make)
        extra = ["--outliers", "1"] if kind == 2 else []
        run(["qforge-compile", onnx_path, "-o", qfm_path, "--method", "rtn", "--bits",
             str(bits), "--group-size", str(group), f"--sym={'true' if sym else 'false'}",
             "--target", "cpu", "--activations", "f32", "--emulate-cuda",
             "--quiet"] + extra)
        w = qfmlib.Module(qfm_path).weights_by_name()

        def get(suffix):
            return next((v for k, v in w.items() if k.endswith(suffix)), None)

        codes, scales, zps, bias = get(".codes"), get(".scales"), \
            get(".zero_points"), get("bias")
        rp, ci, vals = get(".row_ptr"), get(".col_idx"), get(".values")
        deq, _ = qfmlib.dequantize(codes, scales, zps, bits, group, K)
        if rp is not None:
            deq = deq + sparse(rp, ci, vals, N, K)
        b64 = bias.astype(f64) if bias is not None else 0.0

        def model(x):
            parts = affine_parts(x, codes, scales, zps, bits, group, K)
            if rp is not None:
                add_outliers(parts, x, rp, ci, vals)
            return reduce(parts, bias)

        label = f"case {i} {why} (bits {bits}, group {group}, K {K}, N {N})"
        ok &= compare(label, qfm_path, work, rng, K,
                      lambda x: x.astype(f64) @ deq.T + b64,
                      None if kind == 1 else model, f"w{i}")
    for i, (bits, table, K, N, density, why) in enumerate(CODEBOOK):
        L = 1 << bits
        codes = rng.integers(0, L, size=(N, K))
        lut = rng.standard_normal((N, L)).astype(f16 if table == "f16" else f32)
        mask = rng.random((N, K)) < density
        rp = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int32)
        ci = np.nonzero(mask)[1].astype(np.int32)
        vals = (rng.standard_normal(ci.size) * 4).astype(f32)
        bias = rng.standard_normal(N).astype(f32)
        packed = codebook_kernels.pack(codes, bits)
        mlir = os.path.join(work, f"cb{i}.mlir")
        qfm = os.path.join(work, f"cb{i}.qfm")
        with open(mlir, "w") as f:
            f.write(codebook_kernels.graph_ir(packed, lut, table, bits, K, N,
                                              rp if ci.size else None, ci, vals, bias))
        run(["qforge-compile", mlir, "-o", qfm, "--method", "none", "--target", "cpu",
             "--emulate-cuda", "--quiet"])
        dense_w = np.take_along_axis(lut.astype(f64), codes, axis=1)
        if ci.size:
            dense_w = dense_w + sparse(rp, ci, vals, N, K)

        def model(x):
            parts = codebook_parts(x, codes, lut, bits, K)
            if ci.size:
                add_outliers(parts, x, rp, ci, vals)
            return reduce(parts, bias)

        ok &= compare(f"codebook {i} {why} (K {K}, N {N}, nnz {ci.size})", qfm, work,
                      rng, K, lambda x: x.astype(f64) @ dense_w.T + bias, model,
                      f"cb{i}", exact_limit=1e-5)
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
