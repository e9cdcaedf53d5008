"""A small ONNX model whose sequence length is symbolic, and its numpy reference.

  dynamic_model.py make MODEL.onnx            writes the model
  dynamic_model.py input T X.npy              writes an input of length T
  dynamic_model.py check MODEL.onnx X.npy Y.npy
                                              prints PASS when Y matches numpy

The graph: MatMul, Reshape with -1, Softmax, Reshape back, a Slice of a
constant table up to the run-time length (Shape -> Gather -> Unsqueeze), an
Add, and a Concat along the dynamic axis.
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

D = 8


def weights():
    rng = np.random.default_rng(7)
    w = rng.standard_normal((D, D)).astype(np.float32) * 0.5
    table = rng.standard_normal((32, D)).astype(np.float32)
    return w, table


def make(path):
    w, table = weights()
    const = lambda name, values: helper.make_node(
        "Constant", [], [name],
        value=numpy_helper.from_array(np.array(values, np.int64), name))
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["h"]),
        const("split_shape", [1, -1, 2, 4]),
        helper.make_node("Reshape", ["h", "split_shape"], ["r"]),
        helper.make_node("Softmax", ["r"], ["sm"], axis=-1),
        const("join_shape", [1, -1, D]),
        helper.make_node("Reshape", ["sm", "join_shape"], ["j"]),
        helper.make_node("Shape", ["x"], ["s"]),
        const("one", 1),
        helper.make_node("Gather", ["s", "one"], ["t"], axis=0),
        const("zero", [0]),
        helper.make_node("Unsqueeze", ["t", "zero"], ["tt"]),
        helper.make_node("Slice", ["table", "zero", "tt", "zero"], ["pos"]),
        helper.make_node("Add", ["j", "pos"], ["a"]),
        helper.make_node("Concat", ["a", "x"], ["y"], axis=1),
    ]
    graph = helper.make_graph(
        nodes, "dynamic",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "T", D])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, None, D])],
        [numpy_helper.from_array(w, "w"),
         numpy_helper.from_array(table, "table")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)


def reference(x):
    w, table = weights()
    t = x.shape[1]
    r = (x @ w).reshape(1, t, 2, 4)
    e = np.exp(r - r.max(-1, keepdims=True))
    sm = (e / e.sum(-1, keepdims=True)).reshape(1, t, D)
    return np.concatenate([sm + table[:t], x], axis=1)


def main():
    if sys.argv[1] == "make":
        make(sys.argv[2])
    elif sys.argv[1] == "input":
        t = int(sys.argv[2])
        rng = np.random.default_rng(t)
        np.save(sys.argv[3], rng.standard_normal((1, t, D)).astype(np.float32))
    else:
        x = np.load(sys.argv[3])
        y = np.load(sys.argv[4])
        ref = reference(x)
        if y.shape != ref.shape:
            print("FAIL shape", y.shape, "expected", ref.shape)
            sys.exit(1)
        err = float(np.abs(y - ref).max() / np.abs(ref).max())
        print("PASS" if err < 1e-5 else "FAIL", y.shape, "rel %.2e" % err)
        sys.exit(0 if err < 1e-5 else 1)


if __name__ == "__main__":
    main()
