#!/usr/bin/env python3
"""Checks the CUDA target's reductions across a warp (qf-warp-reductions) without a GPU.

For models of ReduceSum, ReduceMax, ReduceMin and ReduceProd over the last axis,
`qforge-compile --emulate-cuda` makes a CPU module whose reductions run as the CUDA
kernels run them: for a long reduction (64 terms or more, or a number known only at
run time) lane l of a warp combines terms l, l + 32, ... in f32 from the operation's
identity (-0, -inf, +inf, 1), the butterfly combines lane values v and v(lane ^ o) for
o = 16, 8, 4, 2, 1, and lane 0 combines the total into the output's initial value; a
short one, or one whose terms lie along another axis than the innermost, is one
sequential loop per output. This script computes both orders in numpy
(f32, one IEEE operation at a time) and requires the module's outputs to be equal to
them bit for bit. The data make an identity matter: maxima of negative numbers, minima
of positive ones, products near 1. The module must also differ from the other order's
result where they differ (the check knows which form each reduction took).

usage: check_warp_reductions.py WORKDIR
       check_warp_reductions.py --warps N --ir-dir DIR
The second form reads a CUDA compile's IR dumps (qforge-compile --dump-ir DIR). After
qf-warp-reductions (the last dump: after its last function) the host function @main must
hold exactly N reductions in warp form (a butterfly of gpu.shuffle xor) and no reduction
left as one thread walking the terms through memory (a loop without iter_args that loads
and stores one output element). After convert-parallel-loops-to-gpu no shuffle may sit
in a loop without iter_args (a lane dimension left sequential in a thread instead of
mapped to thread x, so that a warp would mix the lanes of different outputs).
"""
import glob
import os
import re
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper

sys.path.insert(0, os.path.dirname(__file__))
from qfmlib import run  # noqa: E402

f32 = np.float32
LANES = 32
OPS = {  # onnx op: (numpy combiner, the output's initial value, data)
    "ReduceSum": (np.add, f32(0), lambda r, s: r.standard_normal(s)),
    "ReduceMax": (np.maximum, None, lambda r, s: r.standard_normal(s) - 6),
    "ReduceMin": (np.minimum, None, lambda r, s: r.standard_normal(s) + 6),
    "ReduceProd": (np.multiply, f32(1), lambda r, s: 1 + 0.05 * r.standard_normal(s)),
}
IDENTITY = {"ReduceSum": f32(-0.0), "ReduceMax": f32(-np.inf),
            "ReduceMin": f32(np.inf), "ReduceProd": f32(1)}
# (rows, terms, static?, axis of the terms, form the CUDA target gives it). Terms along
# axis 0 are not read along the innermost dimension: one thread per output.
CASES = [(5, 300, False, 1, "warp"), (3, 1000, False, 1, "warp"), (4, 64, True, 1, "warp"),
         (6, 48, True, 1, "sequential"), (2, 31, False, 1, "warp"),
         (7, 200, False, 0, "sequential")]


def sequential(op, x):
    comb, init, _ = OPS[op]
    acc = x[:, 0].copy() if init is None else np.full(x.shape[0], init, f32)
    for k in range(0 if init is not None else 1, x.shape[1]):
        acc = comb(acc, x[:, k]).astype(f32)
    return acc


def warp(op, x):
    comb, init, _ = OPS[op]
    rows, n = x.shape
    lanes = np.full((rows, LANES), IDENTITY[op], f32)
    for k in range(n):
        lanes[:, k % LANES] = comb(lanes[:, k % LANES], x[:, k]).astype(f32)
    offset = LANES // 2
    while offset:
        lanes = comb(lanes, lanes[:, np.arange(LANES) ^ offset]).astype(f32)
        offset //= 2
    total = lanes[:, 0]
    # The output first holds the reduction's initial value (for max and min the
    # lowest/highest finite f32, which the combination leaves as it is).
    start = init if init is not None else (f32(-3.4028235e38) if op == "ReduceMax"
                                           else f32(3.4028235e38))
    return comb(np.full(rows, start, f32), total).astype(f32)


def make_model(path, rows, terms, static, axis):
    shape = [rows, terms] if static else ["rows", "terms"]
    if axis == 0:
        shape = shape[::-1]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    axes = helper.make_tensor("axes", TensorProto.INT64, [1], [axis])
    nodes, outputs = [], []
    for op in OPS:
        out = op.lower()
        # Opset 13: ReduceSum takes the axes as an input, the others as an attribute.
        if op == "ReduceSum":
            nodes.append(helper.make_node(op, ["x", "axes"], [out], keepdims=0))
        else:
            nodes.append(helper.make_node(op, ["x"], [out], axes=[axis], keepdims=0))
        outputs.append(helper.make_tensor_value_info(
            out, TensorProto.FLOAT, [rows] if static else ["rows"]))
    graph = helper.make_graph(nodes, "reductions", [x], outputs, initializer=[axes])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, path)


def memory_reductions(lines):
    """Loops without iter_args whose body loads and stores one element of a buffer at
    the same indices (the accumulation of a reduction through memory)."""
    count = 0
    for i, line in enumerate(lines):
        if not re.search(r"scf\.for %\S+ = .* step %\S+ \{$", line):
            continue
        indent = len(line) - len(line.lstrip())
        body = []
        for inner in lines[i + 1:]:
            if inner.strip() == "}" and len(inner) - len(inner.lstrip()) == indent:
                break
            body.append(inner)
        text = "\n".join(body)
        stores = re.findall(r"memref\.store %\S+, (%\w+)\[([^\]]*)\]", text)
        count += any(f"memref.load {buf}[{idx}]" in text for buf, idx in stores)
    return count


def enclosing_lines(lines, i):
    """The lines that open the regions around line i (by indentation)."""
    indent = len(lines[i]) - len(lines[i].lstrip())
    for line in reversed(lines[:i]):
        own = len(line) - len(line.lstrip())
        if line.strip() and own < indent:
            indent = own
            yield line


def last_dump(directory, name):
    return sorted(glob.glob(os.path.join(directory, f"*-{name}.mlir")),
                  key=lambda p: int(os.path.basename(p).split("-")[0]))[-1]


def check_ir(directory, warps):
    text = open(last_dump(directory, "qf-warp-reductions")).read()
    host = text.split("gpu.module @")[0]
    main_fn = host[host.index("func.func @main"):]
    end = main_fn.find("\n  func.func")
    main_fn = main_fn if end < 0 else main_fn[:end]
    found = len(re.findall(r"gpu\.shuffle\s+xor %\S+, %c16_i32", main_fn))
    slow = memory_reductions(main_fn.split("\n"))
    registers = len(re.findall(r"iter_args", main_fn)) - found
    lines = open(last_dump(directory, "convert-parallel-loops-to-gpu")).read() \
        .split("gpu.module @")[0].split("\n")
    serial = sum(1 for i, line in enumerate(lines) if "gpu.shuffle" in line and any(
        re.search(r"scf\.for .* step %\S+ \{$", o) for o in enclosing_lines(lines, i)))
    good = found == warps and slow == 0 and serial == 0
    print(f"@main: {found} warp reductions (expected {warps}), {registers} in a register, "
          f"{slow} through memory; {serial} shuffles in sequential lane loops "
          f"{'ok' if good else 'FAIL'}")
    print("PASS" if good else "FAIL")
    return 0 if good else 1


def main():
    if sys.argv[1] == "--warps":
        assert sys.argv[3] == "--ir-dir", __doc__
        return check_ir(sys.argv[4], int(sys.argv[2]))
    work = sys.argv[1]
    os.makedirs(work, exist_ok=True)
    rng = np.random.default_rng(5)
    ok = True
    for i, (rows, terms, static, axis, form) in enumerate(CASES):
        onnx_path = os.path.join(work, f"r{i}.onnx")
        qfm = os.path.join(work, f"r{i}.qfm")
        make_model(onnx_path, rows, terms, static, axis)
        run(["qforge-compile", onnx_path, "-o", qfm, "--method", "none", "--target",
             "cpu", "--emulate-cuda", "--quiet"])
        xs = {op: data(rng, (rows, terms)).astype(f32) for op, (_, _, data) in OPS.items()}
        for op in OPS:
            xp = os.path.join(work, f"r{i}.{op}.x.npy")
            yp = os.path.join(work, f"r{i}.{op}.y.npy")
            np.save(xp, xs[op] if axis == 1 else np.ascontiguousarray(xs[op].T))
            run(["qforge-run", qfm, "--input", f"x={xp}", "--output",
                 f"{op.lower()}={yp}", "--threads", "1"])
            y = np.load(yp)
            expect = warp(op, xs[op]) if form == "warp" else sequential(op, xs[op])
            other = sequential(op, xs[op]) if form == "warp" else warp(op, xs[op])
            exact = np.array_equal(y.view(np.uint32), expect.view(np.uint32))
            # Sums and products in the other order differ somewhere in these data;
            # maxima and minima do not depend on the order.
            distinct = op in ("ReduceMax", "ReduceMin") or \
                not np.array_equal(y.view(np.uint32), other.view(np.uint32))
            good = exact and distinct
            worst = float(np.abs(y.astype(np.float64) - expect).max())
            print(f"{op} {rows}x{terms} {'static' if static else 'dynamic'}"
                  f"{'' if axis == 1 else ' along axis 0'} ({form}): "
                  f"bit-identical {exact}, max |diff| {worst:.3e}"
                  f"{'' if distinct else ', equals the other order'} "
                  f"{'ok' if good else 'FAIL'}")
            ok &= good
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
