#!/usr/bin/python3
"""A small ONNX interpreter on numpy, for checking the exported test models where this onnx
has no onnx.reference (it came in onnx 1.13; Debian bookworm ships 1.12).

It covers the operators (at opset 17 semantics) that models/export_lm.py produces and no
others; an unknown operator is an error naming the node. Arithmetic is float32, as in torch.

Usage: /usr/bin/python3 models/onnx_eval.py model.onnx name=file.npy ... [--out DIR]
"""

import argparse
import os
import sys

import numpy as np
import onnx
import onnx.numpy_helper
from onnx import helper


def _attrs(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _np_dtype(onnx_type):
    if hasattr(helper, "tensor_dtype_to_np_dtype"):  # onnx >= 1.13
        return helper.tensor_dtype_to_np_dtype(onnx_type)
    return onnx.mapping.TENSOR_TYPE_TO_NP_TYPE[onnx_type]


def _slice(x, starts, ends, axes=None, steps=None):
    axes = range(len(starts)) if axes is None else axes
    steps = [1] * len(starts) if steps is None else steps
    idx = [slice(None)] * x.ndim
    for s, e, a, st in zip(starts, ends, axes, steps):
        idx[int(a)] = slice(int(s), int(e), int(st))  # Python clamps like ONNX does
    return x[tuple(idx)]


def _layer_norm(x, scale, bias=None, axis=-1, epsilon=1e-5, **_):
    axes = tuple(range(axis % x.ndim, x.ndim))
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    y = (x - mean) / np.sqrt(var + np.float32(epsilon)) * scale
    return y + bias if bias is not None else y


def _softmax(x, axis=-1):
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


def _reshape(x, shape, allowzero=0):
    shape = [x.shape[i] if (s == 0 and not allowzero) else int(s) for i, s in enumerate(shape)]
    return x.reshape(shape)


def _split(x, split=None, axis=0, num_outputs=None, n=1):
    if split is None:
        split = [x.shape[axis] // n] * n
    return tuple(np.split(x, np.cumsum(split)[:-1], axis=axis))


def run(model, feeds):
    """Run model (onnx.ModelProto) on feeds {input name: array}; returns the outputs in the
    order of graph.output."""
    g = model.graph
    env = {i.name: onnx.numpy_helper.to_array(i) for i in g.initializer}
    env.update(feeds)
    for node in g.node:
        a = _attrs(node)
        x = [env[n] if n else None for n in node.input]
        op = node.op_type
        if op == "Constant":
            out = onnx.numpy_helper.to_array(a["value"])
        elif op == "Identity":
            out = x[0]
        elif op in ("Add", "Sub", "Mul", "Div"):
            f = {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op]
            if np.issubdtype(x[0].dtype, np.integer) and op == "Div":
                out = (x[0] // x[1]).astype(x[0].dtype)
            else:
                out = f(x[0], x[1]).astype(np.result_type(x[0], x[1]))
        elif op == "Neg":
            out = -x[0]
        elif op == "Not":
            out = np.logical_not(x[0])
        elif op in ("Greater", "Less", "Equal", "Or", "And"):
            f = {"Greater": np.greater, "Less": np.less, "Equal": np.equal,
                 "Or": np.logical_or, "And": np.logical_and}[op]
            out = f(x[0], x[1])
        elif op == "CumSum":
            if a.get("exclusive", 0) or a.get("reverse", 0):
                raise NotImplementedError(f"onnx_eval: node '{node.name}': CumSum mode")
            out = np.cumsum(x[0], axis=int(x[1])).astype(x[0].dtype)
        elif op == "Sqrt":
            out = np.sqrt(x[0])
        elif op == "Tanh":
            out = np.tanh(x[0])
        elif op == "Sigmoid":
            out = (1.0 / (1.0 + np.exp(-x[0]))).astype(x[0].dtype)
        elif op == "Pow":
            out = np.power(x[0], x[1]).astype(x[0].dtype)
        elif op == "Erf":
            import math
            out = np.vectorize(math.erf)(x[0]).astype(x[0].dtype)
        elif op == "MatMul":
            out = np.matmul(x[0], x[1])
        elif op == "Gather":
            out = np.take(x[0], x[1].astype(np.int64), axis=a.get("axis", 0))
        elif op == "Shape":
            out = np.array(x[0].shape, dtype=np.int64)
        elif op == "Cast":
            out = x[0].astype(_np_dtype(a["to"]))
        elif op == "Unsqueeze":
            out = x[0]
            for ax in sorted(int(v) % (x[0].ndim + len(x[1])) for v in x[1]):
                out = np.expand_dims(out, ax)
        elif op == "Squeeze":
            out = np.squeeze(x[0], axis=tuple(int(v) for v in x[1]) if len(x) > 1 else None)
        elif op == "Concat":
            out = np.concatenate(x, axis=a["axis"])
        elif op == "Slice":
            out = _slice(x[0], *[v.tolist() if v is not None else None for v in x[1:]])
        elif op == "Reshape":
            out = _reshape(x[0], x[1].tolist(), a.get("allowzero", 0))
        elif op == "Transpose":
            out = np.transpose(x[0], a.get("perm"))
        elif op == "ReduceMean":
            axes = a.get("axes") if len(x) < 2 or x[1] is None else x[1].tolist()
            out = x[0].mean(axis=tuple(axes) if axes is not None else None,
                            keepdims=bool(a.get("keepdims", 1))).astype(x[0].dtype)
        elif op == "Softmax":
            out = _softmax(x[0], a.get("axis", -1))
        elif op == "Where":
            out = np.where(x[0], x[1], x[2])
        elif op == "LayerNormalization":
            out = _layer_norm(*x, **a)
        elif op == "Split":
            out = _split(x[0], x[1].tolist() if len(x) > 1 and x[1] is not None else None,
                         a.get("axis", 0), n=len(node.output))
        else:
            raise NotImplementedError(f"onnx_eval: node '{node.name}': op {op} not supported")
        outs = out if isinstance(out, tuple) else (out,)
        for name, v in zip(node.output, outs):
            env[name] = np.asarray(v)
    return [env[o.name] for o in g.output]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model")
    ap.add_argument("inputs", nargs="*", help="name=file.npy")
    ap.add_argument("--out", default=".", help="directory for <output name>.npy")
    args = ap.parse_args()
    model = onnx.load(args.model)
    feeds = {k: np.load(v) for k, v in (s.split("=", 1) for s in args.inputs)}
    outs = run(model, feeds)
    os.makedirs(args.out, exist_ok=True)
    for o, v in zip(model.graph.output, outs):
        np.save(os.path.join(args.out, o.name + ".npy"), v)
        print(f"{o.name}: {v.dtype} {list(v.shape)}", file=sys.stderr)


if __name__ == "__main__":
    main()
