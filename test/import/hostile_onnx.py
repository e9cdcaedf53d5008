#!/usr/bin/python3
"""Writes hostile ONNX models for test/import/hostile.test.

  hostile_onnx.py external DIR LOCATION [DATA_FILE]
      DIR/model.onnx: y = MatMul(x, w), w [2, 3] float stored as external data with this
      `location`; its 24 bytes are written to DATA_FILE (relative to DIR) when given
  hostile_onnx.py dims OUT.onnx D0,D1,... [TYPE]
      an initializer w with these dims (raw_data of 24 bytes) used by an Add
  hostile_onnx.py input-dims OUT.onnx D0,D1,...
      a graph input x with these static dims feeding an Identity
  hostile_onnx.py cycle OUT.onnx
      a = Neg(b), b = Neg(a), y = Add(x, a): the graph has a cycle
  hostile_onnx.py chain OUT.onnx N
      N Neg nodes in a chain from x to y (y = x for even N)
  hostile_onnx.py nested OUT.onnx DEPTH
      If nodes nested DEPTH deep through their then branches
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper


def model(nodes, inputs, outputs, inits=()):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def save(m, path):
    with open(path, "wb") as f:
        f.write(m.SerializeToString())


def f32(name, shape):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def main():
    kind, out = sys.argv[1], sys.argv[2]
    if kind == "external":
        location = sys.argv[3]
        w = onnx.TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[2, 3])
        w.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", "0"), ("length", "24")):
            entry = w.external_data.add()
            entry.key, entry.value = key, value
        if len(sys.argv) > 4:
            with open(os.path.join(out, sys.argv[4]), "wb") as f:
                f.write(np.arange(6, dtype=np.float32).tobytes())
        save(model([helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")],
                   [f32("x", [1, 2])], [f32("y", [1, 3])], [w]),
             os.path.join(out, "model.onnx"))
    elif kind == "dims":
        dims = [int(d) for d in sys.argv[3].split(",")]
        dtype = getattr(TensorProto, sys.argv[4]) if len(sys.argv) > 4 else TensorProto.FLOAT
        w = onnx.TensorProto(name="w", data_type=dtype, dims=dims, raw_data=bytes(24))
        save(model([helper.make_node("Add", ["x", "w"], ["y"], name="add")],
                   [helper.make_tensor_value_info("x", dtype, [1])],
                   [helper.make_tensor_value_info("y", dtype, None)], [w]), out)
    elif kind == "input-dims":
        dims = [int(d) for d in sys.argv[3].split(",")]
        save(model([helper.make_node("Identity", ["x"], ["y"], name="id")],
                   [f32("x", dims)], [f32("y", None)]), out)
    elif kind == "cycle":
        nodes = [helper.make_node("Neg", ["b"], ["a"], name="first"),
                 helper.make_node("Neg", ["a"], ["b"], name="second"),
                 helper.make_node("Add", ["x", "a"], ["y"], name="add")]
        save(model(nodes, [f32("x", [2])], [f32("y", [2])]), out)
    elif kind == "chain":
        n = int(sys.argv[3])
        names = ["x"] + ["t%d" % i for i in range(n - 1)] + ["y"]
        nodes = [helper.make_node("Neg", [names[i]], [names[i + 1]], name="n%d" % i)
                 for i in range(n)]
        save(model(nodes, [f32("x", [2])], [f32("y", [2])]), out)
    elif kind == "nested":
        depth = int(sys.argv[3])
        def leaf():
            return helper.make_graph([helper.make_node("Identity", ["x"], ["r0"])], "leaf",
                                     [], [f32("r0", [2])])
        body = leaf()
        for level in range(1, depth + 1):
            node = helper.make_node("If", ["c"], ["r%d" % level], then_branch=body,
                                    else_branch=leaf(), name="if%d" % level)
            body = helper.make_graph([node], "b%d" % level, [], [f32("r%d" % level, [2])])
        top = body.node[0]
        top.output[0] = "y"
        save(model([top], [helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                           f32("x", [2])], [f32("y", [2])]), out)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
