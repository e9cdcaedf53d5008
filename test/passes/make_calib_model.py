"""make_calib_model.py OUT.onnx [--static T] [--gain]

A byte-token model small enough to check calibration by hand: input_ids int64 [1, T]
-> Gather from an embedding whose row b is [b, 1] -> MatMul with a constant 2x3 weight
-> y [1, T, 3]. The MatMul's input X holds [b, 1] for every byte b of a window.
With --gain, X is multiplied by a constant per-channel gain [0.5, 2] first (as a
normalisation's weight is), which qf-awq can fold its scales into.
With --chain, a second linear follows: x -> MatMul [[1], [0.3]] -> h [1, T, 1] -> MatMul
[[1, 2]] -> y [1, T, 2] (sequential calibration: h is b + 0.3 in the float model, b once
the first weight is quantized to [1, 0]).
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
t = int(sys.argv[sys.argv.index("--static") + 1]) if "--static" in sys.argv else "T"
emb = np.stack([np.arange(256, dtype=np.float32), np.ones(256, np.float32)], axis=1)
w = np.array([[1, 2, 3], [4, 5, 6]], dtype=np.float32)
gain = "--gain" in sys.argv
nodes = [helper.make_node("Gather", ["emb", "input_ids"], ["e" if gain else "x"], name="embed")]
inits = [numpy_helper.from_array(emb, "emb"), numpy_helper.from_array(w, "w")]
if gain:
    nodes.append(helper.make_node("Mul", ["e", "g"], ["x"], name="gain"))
    inits.append(numpy_helper.from_array(np.array([0.5, 2], np.float32), "g"))
chain = "--chain" in sys.argv
if chain:
    w = np.array([[1], [0.3]], dtype=np.float32)
    inits[1] = numpy_helper.from_array(w, "w")
    inits.append(numpy_helper.from_array(np.array([[1, 2]], np.float32), "w2"))
    nodes.append(helper.make_node("MatMul", ["x", "w"], ["h"], name="proj"))
    nodes.append(helper.make_node("MatMul", ["h", "w2"], ["y"], name="proj2"))
else:
    nodes.append(helper.make_node("MatMul", ["x", "w"], ["y"], name="proj"))
graph = helper.make_graph(
    nodes,
    "calib",
    [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, t])],
    [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, t, 2 if chain else 3])],
    inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.save(model, out)
