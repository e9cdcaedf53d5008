"""Codebook (look-up table) and CSR-outlier kernels, checked numerically.

Writes graph IR with one tensor-form qf.fused_matmul (codebook scheme, per-row LUT in
f32 or f16, CSR outliers, bias; rows of x dynamic) over random codes, compiles it for the CPU with
`--method none` (the weights stay as given), runs it at M = 1 and 3 (GEMV kernel) and
M = 19 (GEMM kernel) on 1 and 2 threads, and compares with y = x · (LUT[codes] + S)ᵀ + b
computed here in numpy (relative difference <= 1e-5).

usage: codebook_kernels.py WORKDIR
"""
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import qfmlib  # noqa: E402
from qfmlib import run  # noqa: E402


def dense(a, elem):
    shape = "x".join(str(d) for d in a.shape)
    return f"dense<{nest(a)}> : tensor<{shape}x{elem}>"


def nest(a):
    if a.ndim == 1:
        return "[" + ", ".join(repr(float(v)) if a.dtype.kind == "f" else str(int(v))
                               for v in a) + "]"
    return "[" + ", ".join(nest(r) for r in a) + "]"


def pack(codes, bits):
    rows, cols = codes.shape
    words = (cols * bits + 31) // 32
    out = np.zeros((rows, words), dtype=np.uint64)
    for k in range(cols):
        bit = k * bits
        w, off = divmod(bit, 32)
        out[:, w] |= (codes[:, k].astype(np.uint64) << np.uint64(off)) & np.uint64(0xFFFFFFFF)
        if off + bits > 32:
            out[:, w + 1] |= codes[:, k].astype(np.uint64) >> np.uint64(32 - off)
    return out.astype(np.uint32)


def graph_ir(packed, lut, table, bits, K, N, row_ptr, col_idx, values, bias):
    """One fused matmul with a [N, 2^bits] table (f32 or f16), CSR outliers unless
    row_ptr is None, and a bias; x has a dynamic number of rows."""
    W, L = packed.shape[1], 1 << bits
    consts = [f"  %codes = arith.constant {dense(packed.view(np.int32), 'i32')}",
              f"  %lut = arith.constant {dense(lut, table)}",
              f"  %b = arith.constant {dense(bias, 'f32')}"]
    operands, types = "", ""
    if row_ptr is not None:
        nnz = col_idx.size
        consts += [f"  %rp = arith.constant {dense(row_ptr, 'i32')}",
                   f"  %ci = arith.constant {dense(col_idx, 'i32')}",
                   f"  %v = arith.constant {dense(values, 'f32')}"]
        operands = " outliers(%rp, %ci, %v)"
        types = f", tensor<{N+1}xi32>, tensor<{nnz}xi32>, tensor<{nnz}xf32>"
    body = "\n".join(consts)
    return f"""func.func @main(%x: tensor<?x{K}xf32> {{qf.name = "x"}}) -> (tensor<?x{N}xf32> {{qf.name = "y"}}) {{
  %c0 = arith.constant 0 : index
  %m = tensor.dim %x, %c0 : tensor<?x{K}xf32>
  %init = tensor.empty(%m) : tensor<?x{N}xf32>
{body}
  %y = qf.fused_matmul #qf.scheme<codebook, bits = {bits}> %x, %codes lut(%lut){operands} bias(%b) outs(%init) : (tensor<?x{K}xf32>, tensor<{N}x{W}xi32>, tensor<{N}x{L}x{table}>{types}, tensor<{N}xf32>, tensor<?x{N}xf32>) -> tensor<?x{N}xf32>
  return %y : tensor<?x{N}xf32>
}}
"""


def main():
    work = sys.argv[1]
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(3)
    ok = True
    for bits, K, N, table in ((4, 1000, 150, "f32"), (3, 544, 20, "f32"),
                              (4, 520, 40, "f16"), (3, 544, 20, "f16")):
        L = 1 << bits
        codes = rng.integers(0, L, size=(N, K))
        lut = rng.standard_normal((N, L)).astype(np.float16 if table == "f16" else np.float32)
        packed = pack(codes, bits)
        assert (qfmlib.unpack_codes(packed, K, bits) == codes).all()
        # About 1% outliers, at least one row empty.
        mask = rng.random((N, K)) < 0.01
        mask[0, :] = False
        row_ptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int32)
        col_idx = np.nonzero(mask)[1].astype(np.int32)
        values = (rng.standard_normal(col_idx.size) * 4).astype(np.float32)
        bias = rng.standard_normal(N).astype(np.float32)
        nnz = col_idx.size
        ir = graph_ir(packed, lut, table, bits, K, N, row_ptr, col_idx, values, bias)
        mlir = os.path.join(work, f"cb{bits}{table}.mlir")
        qfm = os.path.join(work, f"cb{bits}{table}.qfm")
        with open(mlir, "w") as f:
            f.write(ir)
        run(["qforge-compile", mlir, "-o", qfm, "--method", "none", "--target", "cpu",
             "--quiet"])
        dense_w = np.take_along_axis(lut.astype(np.float64), codes, axis=1)
        dense_w[mask] += values.astype(np.float64)
        worst = 0.0
        for M in (1, 3, 19):
            x = rng.standard_normal((M, K)).astype(np.float32)
            ref = x.astype(np.float64) @ dense_w.T + bias
            for y in qfmlib.run_on_threads(qfm, x, work, f"cb{bits}{table}.m{M}"):
                rel = np.abs(y - ref).max() / np.abs(ref).max()
                worst = max(worst, rel)
        good = worst <= 1e-5
        ok &= good
        print(f"codebook {bits}-bit {table} table K {K} N {N} nnz {nnz}: max rel diff {worst:.2e} "
              f"{'ok' if good else 'FAIL'}")
    print("PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
