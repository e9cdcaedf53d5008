"""make_awq_fold_model.py OUT.onnx [--cache] [--mixed]

A byte-token model with the two places where qf-awq folds its scales into the previous
linear: input_ids int64 [1, T] -> Gather from a random 256 x 8 embedding, times a constant
gain g [8] (as a norm's weight; q/k/v's scales fold into it) -> x;
attention with two heads of 4: q, k, v = x Wq, x Wk, x Wv + bv, each reshaped to
[1, T, 2, 4] and transposed to [1, 2, T, 4]; a = softmax(q k^T / 2) v, transposed back and
reshaped to [1, T, 8]; h = a Wo (o reads the attention output: 1/s folds into the rows of
Wv and into bv); an MLP: m = silu(h Wg) * (h Wu) (sigmoid and two Mul), y = m Wd
[1, T, 8] (down reads silu(gate) * up: 1/s folds into the rows of Wu). The gate/up group
reads o's output directly, so its scales fold into the rows of Wo.

With --cache, k and v are concatenated with a past position (constants past_k, past_v
[1, 2, 1, 4], so that the byte tokens stay the model's one input, as qf-calibrate needs)
and also returned as present_k and present_v, as a decoder's KV cache is: o's chain then
has a concatenation and another reader, and qf-awq falls back to an explicit
multiplication (folding would change the returned cache).

With --mixed, the attention output [1, 2, T, 4] is reshaped to [1, T, 8] without the
transpose back, so that o's channels mix heads with sequence positions: the trace must
refuse it (explicit multiplication).
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

out = sys.argv[1]
cache = "--cache" in sys.argv
mixed = "--mixed" in sys.argv
rng = np.random.default_rng(7)
D, H, E = 8, 2, 4


def mat(name, rows, cols, scale=0.5):
    return numpy_helper.from_array((rng.standard_normal((rows, cols)) * scale).astype(np.float32), name)


inits = [
    # Channels of very different magnitudes, so that AWQ picks alpha > 0.
    numpy_helper.from_array((rng.standard_normal((256, D)) * np.geomspace(0.1, 4, D)).astype(np.float32), "emb"),
    mat("wq", D, D), mat("wk", D, D), mat("wv", D, D), mat("wo", D, D),
    mat("wg", D, 2 * D), mat("wu", D, 2 * D), mat("wd", 2 * D, D),
    numpy_helper.from_array(rng.standard_normal(D).astype(np.float32), "bv"),
    numpy_helper.from_array(rng.uniform(0.5, 2, D).astype(np.float32), "gain_w"),
    numpy_helper.from_array(np.array([1, -1, H, E], np.int64), "heads"),
    numpy_helper.from_array(np.array([1, -1, D], np.int64), "merged"),
    numpy_helper.from_array(np.array(0.5, np.float32), "inv_sqrt_e"),
]
n = helper.make_node
nodes = [
    n("Gather", ["emb", "input_ids"], ["e"], name="embed"),
    n("Mul", ["e", "gain_w"], ["x"], name="gain"),
    n("MatMul", ["x", "wq"], ["q0"], name="q"),
    n("MatMul", ["x", "wk"], ["k0"], name="k"),
    n("MatMul", ["x", "wv"], ["v0"], name="v"),
    n("Add", ["v0", "bv"], ["v1"], name="v_bias"),
]
for t in ("q", "k", "v"):
    src = "v1" if t == "v" else t + "0"
    nodes.append(n("Reshape", [src, "heads"], [t + "2"], name=t + "_split"))
    nodes.append(n("Transpose", [t + "2"], [t + "3"], perm=[0, 2, 1, 3], name=t + "_heads"))
k, v = "k3", "v3"
if cache:
    for t in ("k", "v"):
        inits.append(numpy_helper.from_array(rng.standard_normal((1, H, 1, E)).astype(np.float32), "past_" + t))
        nodes.append(n("Concat", ["past_" + t, t + "3"], ["present_" + t], axis=2, name=t + "_cache"))
    k, v = "present_k", "present_v"
nodes += [
    n("Transpose", [k], ["kt"], perm=[0, 1, 3, 2], name="kt"),
    n("MatMul", ["q3", "kt"], ["s0"], name="scores"),
    n("Mul", ["s0", "inv_sqrt_e"], ["s1"], name="scale"),
    n("Softmax", ["s1"], ["p"], axis=-1, name="softmax"),
    n("MatMul", ["p", v], ["a0"], name="pv"),
    n("Transpose", ["a0"], ["a1"], perm=[0, 1, 2, 3] if mixed else [0, 2, 1, 3], name="a_merge"),
    n("Reshape", ["a1", "merged"], ["a2"], name="a_reshape"),
    n("MatMul", ["a2", "wo"], ["h"], name="o"),
    n("MatMul", ["h", "wg"], ["g"], name="gate"),
    n("MatMul", ["h", "wu"], ["u"], name="up"),
    n("Sigmoid", ["g"], ["sg"], name="sigmoid"),
    n("Mul", ["g", "sg"], ["silu"], name="silu"),
    n("Mul", ["silu", "u"], ["m"], name="gated"),
    n("MatMul", ["m", "wd"], ["y"], name="down"),
]
inputs = [helper.make_tensor_value_info("input_ids", TensorProto.INT64, [1, "T"])]
outputs = [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, "T", D])]
if cache:
    for t in ("k", "v"):
        outputs.append(helper.make_tensor_value_info("present_" + t, TensorProto.FLOAT, [1, H, "S", E]))
graph = helper.make_graph(nodes, "awq_fold", inputs, outputs, inits)
model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
model.ir_version = 8
onnx.checker.check_model(model)
onnx.save(model, out)
