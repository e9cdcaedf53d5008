#!/usr/bin/python3
"""Writes a one-layer linear ONNX model: y = x @ W (+ b).

  make_linear.py OUT.onnx --in 64 --out 32 --batch 1 --seed 0 [--bias]
                [--dynamic-batch] [--ref-dir DIR] [--opset 17]

Input `x` is float32 [batch, in], output `y` float32 [batch, out]. The weight
`fc.weight` [in, out] and bias `fc.bias` [out] are random float32 (normal,
scaled by 1/sqrt(in)) from --seed. With --dynamic-batch the rows of x and y
are a symbolic dimension `M` (--batch still sizes the reference input). Nodes are named `fc/MatMul` and
`fc/Add`. With --ref-dir, also writes DIR/x.npy (a random input from the
same seed) and DIR/y.npy (its float32 output).

The end-to-end tests rely on this interface; keep it stable.
"""

import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", help="output .onnx path")
    ap.add_argument("--in", dest="n_in", type=int, default=64,
                    help="input features")
    ap.add_argument("--out", dest="n_out", type=int, default=32,
                    help="output features")
    ap.add_argument("--batch", type=int, default=1, help="rows of x")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--bias", action="store_true", help="add a bias")
    ap.add_argument("--dynamic-batch", action="store_true",
                    help="leave the rows of x and y dynamic ('M')")
    ap.add_argument("--ref-dir", help="write x.npy and y.npy here")
    ap.add_argument("--opset", type=int, default=17)
    args = ap.parse_args()

    rng = np.random.default_rng(args.seed)
    w = (rng.standard_normal((args.n_in, args.n_out)) /
         np.sqrt(args.n_in)).astype(np.float32)
    b = (rng.standard_normal(args.n_out) * 0.1).astype(np.float32)

    inits = [numpy_helper.from_array(w, "fc.weight")]
    nodes = []
    if args.bias:
        inits.append(numpy_helper.from_array(b, "fc.bias"))
        nodes.append(helper.make_node("MatMul", ["x", "fc.weight"], ["xw"],
                                      name="fc/MatMul"))
        nodes.append(helper.make_node("Add", ["xw", "fc.bias"], ["y"],
                                      name="fc/Add"))
    else:
        nodes.append(helper.make_node("MatMul", ["x", "fc.weight"], ["y"],
                                      name="fc/MatMul"))
    rows = "M" if args.dynamic_batch else args.batch
    graph = helper.make_graph(
        nodes, "linear",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT,
                                       [rows, args.n_in])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT,
                                       [rows, args.n_out])],
        inits)
    model = helper.make_model(
        graph, producer_name="qforge-gen_linear",
        opset_imports=[helper.make_opsetid("", args.opset)])
    model.ir_version = 8
    onnx.save(model, args.out)

    if args.ref_dir:
        os.makedirs(args.ref_dir, exist_ok=True)
        x = rng.standard_normal((args.batch, args.n_in)).astype(np.float32)
        y = x @ w
        if args.bias:
            y = y + b
        np.save(os.path.join(args.ref_dir, "x.npy"), x)
        np.save(os.path.join(args.ref_dir, "y.npy"), y.astype(np.float32))


if __name__ == "__main__":
    main()
