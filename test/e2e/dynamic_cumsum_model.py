"""CumSum over dimensions known only at run time, as exporters write position ids from an
attention mask: position_ids = CumSum(attention_mask, 1) - 1 (int64), and a float CumSum of
x, exclusive and reversed, both with input shapes ['batch', 'seq'].

  dynamic_cumsum_model.py make MODEL.onnx
  dynamic_cumsum_model.py input B T DIR        writes DIR/mask.npy and DIR/x.npy
  dynamic_cumsum_model.py check DIR            compares DIR/pos.npy and DIR/rev.npy to numpy
"""
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper


def make(path):
    nodes = [
        helper.make_node("Constant", [], ["axis"], value=helper.make_tensor("axis", TensorProto.INT64, [], [1])),
        helper.make_node("Constant", [], ["one"], value=helper.make_tensor("one", TensorProto.INT64, [], [1])),
        helper.make_node("CumSum", ["attention_mask", "axis"], ["counts"]),
        helper.make_node("Sub", ["counts", "one"], ["position_ids"]),
        helper.make_node("CumSum", ["x", "axis"], ["rev"], exclusive=1, reverse=1),
    ]
    dims = ["batch", "seq"]
    graph = helper.make_graph(
        nodes, "dynamic_cumsum",
        [helper.make_tensor_value_info("attention_mask", TensorProto.INT64, dims),
         helper.make_tensor_value_info("x", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("position_ids", TensorProto.INT64, dims),
         helper.make_tensor_value_info("rev", TensorProto.FLOAT, dims)])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(model)
    onnx.save(model, path)


def main():
    cmd = sys.argv[1]
    if cmd == "make":
        make(sys.argv[2])
    elif cmd == "input":
        B, T, d = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
        rng = np.random.default_rng(B * 100 + T)
        mask = np.ones((B, T), dtype=np.int64)
        mask[0, : T // 2] = 0  # left padding in the first row
        np.save(os.path.join(d, "mask.npy"), mask)
        np.save(os.path.join(d, "x.npy"), rng.standard_normal((B, T)).astype(np.float32))
    else:
        d = sys.argv[2]
        mask, x = np.load(os.path.join(d, "mask.npy")), np.load(os.path.join(d, "x.npy"))
        pos, rev = np.load(os.path.join(d, "pos.npy")), np.load(os.path.join(d, "rev.npy"))
        want_rev = np.flip(np.cumsum(np.flip(x, 1), 1), 1) - x
        ok = (pos.dtype == np.int64 and np.array_equal(pos, np.cumsum(mask, 1) - 1)
              and np.allclose(rev, want_rev, rtol=1e-5, atol=1e-5))
        print(f"{'PASS' if ok else 'FAIL'} {pos.shape}")
        sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
