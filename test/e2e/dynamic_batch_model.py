"""A token model whose input_ids have both dimensions dynamic (['batch', 'seq'], as
torch.onnx with dynamic_axes on both and Hugging Face exporters write them): an
embedding Gather, a MatMul with a weight and an Add, and its numpy reference.

  dynamic_batch_model.py make MODEL.onnx
  dynamic_batch_model.py input B T IDS.npy
  dynamic_batch_model.py check IDS.npy Y.npy      prints PASS (shape) when Y matches numpy

And CumSum and Expand over dimensions known only at run time, as exporters write position
ids from an attention mask: position_ids = CumSum(attention_mask, 1) - 1 (int64), a float
CumSum of x, exclusive and reversed, both of shape ['batch', 'seq']; x expanded to
[batch, 3, seq] (a shape from Shape) and to [2, batch, seq] (a constant shape), and tiled
by [2, batch] (from Shape) and by [1, 2]:

  dynamic_batch_model.py make-cumsum MODEL.onnx
  dynamic_batch_model.py input-cumsum B T DIR     writes DIR/mask.npy and DIR/x.npy
  dynamic_batch_model.py check-cumsum DIR         compares DIR/{pos,rev,expanded,doubled,
                                                  tiled,tiled2}.npy
                                                  to numpy
"""
import os
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


def save(graph, path):
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)


def make_cumsum(path):
    nodes = [
        helper.make_node("Constant", [], ["axis"],
                         value=helper.make_tensor("axis", TensorProto.INT64, [], [1])),
        helper.make_node("Constant", [], ["one"],
                         value=helper.make_tensor("one", TensorProto.INT64, [], [1])),
        helper.make_node("CumSum", ["attention_mask", "axis"], ["counts"]),
        helper.make_node("Sub", ["counts", "one"], ["position_ids"]),
        helper.make_node("CumSum", ["x", "axis"], ["rev"], exclusive=1, reverse=1),
        # Expand to a shape computed from Shape ([batch, 3, seq]), and of an input with
        # dynamic sizes to a constant shape ([2, batch, seq]).
        helper.make_node("Shape", ["x"], ["xs"]),
        helper.make_node("Constant", [], ["i0"], value=helper.make_tensor("i0", TensorProto.INT64, [1], [0])),
        helper.make_node("Constant", [], ["i1"], value=helper.make_tensor("i1", TensorProto.INT64, [1], [1])),
        helper.make_node("Constant", [], ["three"], value=helper.make_tensor("three", TensorProto.INT64, [1], [3])),
        helper.make_node("Gather", ["xs", "i0"], ["b"]),
        helper.make_node("Gather", ["xs", "i1"], ["t"]),
        helper.make_node("Concat", ["b", "three", "t"], ["target"], axis=0),
        helper.make_node("Unsqueeze", ["x", "i1"], ["x1"]),
        helper.make_node("Expand", ["x1", "target"], ["expanded"]),
        helper.make_node("Constant", [], ["twice"], value=helper.make_tensor("twice", TensorProto.INT64, [3], [2, 1, 1])),
        helper.make_node("Expand", ["x", "twice"], ["doubled"]),
        # Tile by repeats computed from Shape ([2, batch]) and of a run-time sized input
        # by constant repeats ([1, 2]).
        helper.make_node("Constant", [], ["two"], value=helper.make_tensor("two", TensorProto.INT64, [1], [2])),
        helper.make_node("Concat", ["two", "b"], ["reps"], axis=0),
        helper.make_node("Tile", ["x", "reps"], ["tiled"]),
        helper.make_node("Constant", [], ["r12"], value=helper.make_tensor("r12", TensorProto.INT64, [2], [1, 2])),
        helper.make_node("Tile", ["x", "r12"], ["tiled2"]),
    ]
    dims = ["batch", "seq"]
    save(helper.make_graph(
        nodes, "dynamic_cumsum",
        [helper.make_tensor_value_info("attention_mask", TensorProto.INT64, dims),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("position_ids", TensorProto.INT64, dims),
         helper.make_tensor_value_info("rev", TensorProto.FLOAT, dims),
         helper.make_tensor_value_info("expanded", TensorProto.FLOAT, ["batch", 3, "seq"]),
         helper.make_tensor_value_info("doubled", TensorProto.FLOAT, [2, "batch", "seq"]),
         helper.make_tensor_value_info("tiled", TensorProto.FLOAT, [None, None]),
         helper.make_tensor_value_info("tiled2", TensorProto.FLOAT, ["batch", None])]),
        path)


def cumsum_input(B, T, d):
    rng = np.random.default_rng(B * 100 + T)
    mask = np.ones((B, T), dtype=np.int64)
    mask[0, : T // 2] = 0  # left padding in the first row
    np.save(os.path.join(d, "mask.npy"), mask)
    np.save(os.path.join(d, "x.npy"), rng.standard_normal((B, T)).astype(np.float32))


def cumsum_check(d):
    mask, x = np.load(os.path.join(d, "mask.npy")), np.load(os.path.join(d, "x.npy"))
    pos, rev = np.load(os.path.join(d, "pos.npy")), np.load(os.path.join(d, "rev.npy"))
    want_rev = np.flip(np.cumsum(np.flip(x, 1), 1), 1) - x
    expanded = np.load(os.path.join(d, "expanded.npy"))
    doubled = np.load(os.path.join(d, "doubled.npy"))
    ok = (pos.dtype == np.int64 and np.array_equal(pos, np.cumsum(mask, 1) - 1)
          and np.allclose(rev, want_rev, rtol=1e-5, atol=1e-5)
          and np.array_equal(expanded, np.broadcast_to(x[:, None, :], (x.shape[0], 3, x.shape[1])))
          and np.array_equal(doubled, np.broadcast_to(x, (2,) + x.shape))
          and np.array_equal(np.load(os.path.join(d, "tiled.npy")), np.tile(x, (2, x.shape[0])))
          and np.array_equal(np.load(os.path.join(d, "tiled2.npy")), np.tile(x, (1, 2))))
    print(f"{'PASS' if ok else 'FAIL'} {pos.shape}")
    sys.exit(0 if ok else 1)


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
    save(graph, path)


def main():
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2])
    elif cmd == "make-cumsum":
        make_cumsum(sys.argv[2])
    elif cmd == "input-cumsum":
        cumsum_input(int(sys.argv[2]), int(sys.argv[3]), sys.argv[4])
    elif cmd == "check-cumsum":
        cumsum_check(sys.argv[2])
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
