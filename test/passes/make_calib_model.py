"""make_calib_model.py OUT.onnx [--static T]

A byte-token model small enough to check calibration by hand: input_ids int64 [1, T]
-> Gather from an embedding whose row b is [b, 1] -> MatMul with a constant 2x3 weight
-> y [1, T, 3]. The MatMul's input X holds [b, 1] for every byte b of a window.
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
t = int(sys.argv[sys.argv.index("--static") + 1]) if "--static" in sys.argv else "T"
emb = np.stack([np.arange(256, dtype=np.float32), np.ones(256, np.float32)], axis=1)
w = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
graph = helper.make_graph(
    [helper.make_node("Gather", ["emb", "input_ids"], ["x"], name="embed"),
     helper.make_node("MatMul", ["x", "w"], ["y"], name="proj")],
    "calib",
    [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, t])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, t, 3])],
    [numpy_helper.from_array(emb, "emb"), numpy_helper.from_array(w, "w")])
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.save(model, out)
