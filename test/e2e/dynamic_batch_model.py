"""A token model whose input_ids have both dimensions dynamic (['batch', 'seq'], as
torch.onnx with dynamic_axes on both and Hugging Face exporters write them): an
embedding Gather, a MatMul with a weight and an Add, and its numpy reference.

  dynamic_batch_model.py make MODEL.onnx
  dynamic_batch_model.py input B T IDS.npy
  dynamic_batch_model.py check IDS.npy Y.npy      prints PASS (shape) when Y matches numpy
"""
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

V, D, N = 16, 8, 4


def weights():
    rng = np.random.default_rng(11)
    return (rng.standard_normal((V, D)).astype(np.float32),
            rng.standard_normal((D, N)).astype(np.float32),
            rng.standard_normal(N).astype(np.float32))


def make(path):
    emb, w, b = weights()
    nodes = [
        helper.make_node("Gather", ["embed.weight", "input_ids"], ["h"]),
        helper.make_node("MatMul", ["h", "proj.weight"], ["p"]),
        helper.make_node("Add", ["p", "proj.bias"], ["logits"]),
    ]
    graph = helper.make_graph(
        nodes, "dynamic_batch",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["batch", "seq"])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", "seq", N])],
        [numpy_helper.from_array(emb, "embed.weight"),
         numpy_helper.from_array(w, "proj.weight"),
         numpy_helper.from_array(b, "proj.bias")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)


def main():
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2])
    elif cmd == "input":
        B, T = int(sys.argv[2]), int(sys.argv[3])
        ids = np.random.default_rng(B * 100 + T).integers(0, V, size=(B, T)).astype(np.int64)
        np.save(sys.argv[4], ids)
    elif cmd == "check":
        emb, w, b = weights()
        ids = np.load(sys.argv[2])
        y = np.load(sys.argv[3])
        ref = emb[ids] @ w + b
        ok = y.shape == ref.shape and np.allclose(y, ref, rtol=1e-5, atol=1e-5)
        print(f"{'PASS' if ok else 'FAIL'} {y.shape}")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
