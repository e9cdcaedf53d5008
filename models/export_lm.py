#!/usr/bin/python3
"""Export qforge's byte-level test models to ONNX (opset 17, TorchScript-based exporter) and
write reference data next to them.

For each model name (llama, gpt2), from models/<name>/model.pt:
  models/<name>/<name>.onnx         input_ids int64 [1, T] (T dynamic, T <= 512)
                                    -> logits float32 [1, T, 256]
  models/<name>/<name>-decode.onnx  S new tokens after P cached ones, in Hugging Face /
                                    optimum's decoder-with-past convention: input_ids int64
                                    [1, S], attention_mask int64 [1, P + S] (1 per real
                                    token), position_ids int64 [1, S],
                                    past_key_values.<i>.key / .value float32
                                    [1, heads, P, head_dim] for each layer i (S and P
                                    dynamic, P may be 0) -> logits [1, S, 256],
                                    present.<i>.key / .value [1, heads, P + S, head_dim]
  models/<name>/ref_input_ids.npy   int64 [1, 64]: bytes 0..63 of models/data/val.txt
  models/<name>/ref_logits.npy      float32 [1, 64, 256]: torch logits for it
  models/<name>/ref_perplexity.json
                                    torch's nats/byte on models/data/val.txt (its first
                                    PPL_PREFIX bytes, and all of it) with qforge-run
                                    perplexity's windowing (see perplexity_ref)
  models/<name>/decode_ref/<onnx name>.npy
                                    one call of the decode form: the cache holds bytes 0..59
                                    of the same window (P = 60, filled by a prefill call with
                                    P = 0), input_ids are bytes 60..63 (S = 4); its logits
                                    equal ref_logits[:, 60:64] up to rounding.
Weights are initializers inside each file. Then each export is checked against torch: with
onnx.reference.ReferenceEvaluator when this onnx has it (>= 1.13), else with the numpy
evaluator in models/onnx_eval.py; the check fails unless
max |onnx - torch| <= 1e-4 * max |torch| for every output.

Usage: /usr/bin/python3 models/export_lm.py [llama] [gpt2] [--no-check] [--decode-only]
  --decode-only rewrites only the decode form and decode_ref/, taking the weights from
  models/<name>/<name>.onnx when model.pt is absent.
       /usr/bin/python3 models/export_lm.py --synthetic DIR [--d-model 2048] [--layers 8]
                        [--heads N] [--d-ff N] [--seed 0]
  --synthetic exports a random-weight llama of that size (full-sequence form only, weights
  as ONNX external data in DIR/model.onnx.data, no reference data and no check); see
  export_synthetic.
"""

import argparse
import collections
import inspect
import json
import os
import sys

import numpy as np
import torch
import onnx
import onnx.numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import train_lm  # noqa: E402

REF_LEN = 64
RTOL = 1e-4
PPL_WINDOW = 256
PPL_PREFIX = 4096


class Full(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids):
        return self.m(input_ids)


class Decode(torch.nn.Module):
    def __init__(self, m):
        super().__init__()
        self.m = m

    def forward(self, input_ids, attention_mask, position_ids, *past_flat):
        past = [(past_flat[2 * i], past_flat[2 * i + 1]) for i in range(len(past_flat) // 2)]
        logits, present = self.m.cached(input_ids, attention_mask, position_ids, past)
        return (logits,) + tuple(t for kv in present for t in kv)


def decode_names(layers):
    """The decode form's inputs and outputs, as Hugging Face / optimum name them."""
    past = [f"past_key_values.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    present = [f"present.{i}.{kv}" for i in range(layers) for kv in ("key", "value")]
    return ["input_ids", "attention_mask", "position_ids"] + past, ["logits"] + present


def decode_feeds(ids, past):
    """Inputs of one call of the decode form: ids [1, S] after the cache `past`."""
    P, S = past[0][0].shape[2], ids.shape[1]
    feeds = {"input_ids": ids, "attention_mask": torch.ones(1, P + S, dtype=torch.int64),
             "position_ids": torch.arange(P, P + S, dtype=torch.int64)[None, :]}
    for i, (k, v) in enumerate(past):
        feeds[f"past_key_values.{i}.key"] = k
        feeds[f"past_key_values.{i}.value"] = v
    return feeds


def rename_initializers(path, module):
    """Give every initializer the name of the torch tensor it holds: parameters and buffers
    keep their names (without the wrapper's "m." prefix); a weight the exporter stored
    transposed for MatMul ([in, out], named "onnx::MatMul_<n>" by torch) is named
    "<parameter>.T"."""
    model = onnx.load(path)
    tensors = {n[2:]: t.detach().numpy() for n, t in module.state_dict(keep_vars=False).items()}
    tensors.update({n[2:]: b.numpy() for n, b in module.named_buffers()})
    new = {}
    for init in model.graph.initializer:
        a = onnx.numpy_helper.to_array(init)
        name = init.name[2:] if init.name.startswith("m.") else None
        if name is None:
            for n, t in tensors.items():
                if t.ndim == 2 and t.T.shape == a.shape and np.array_equal(t.T, a):
                    name = n + ".T"
                    break
        if name is not None and name not in new.values():
            new[init.name] = name
    for init in model.graph.initializer:
        init.name = new.get(init.name, init.name)
    for node in model.graph.node:
        for i, x in enumerate(node.input):
            if x in new:
                node.input[i] = new[x]
    onnx.save(model, path)


def export(module, args, path, input_names, output_names, dynamic_axes):
    kw = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kw["dynamo"] = False  # the classic TorchScript exporter
    torch.onnx.export(module, args, path, opset_version=17, input_names=input_names,
                      output_names=output_names, dynamic_axes=dynamic_axes,
                      do_constant_folding=True, **kw)
    rename_initializers(path, module)
    onnx.checker.check_model(onnx.load(path), full_check=True)


def op_counts(path):
    g = onnx.load(path).graph
    return sorted(collections.Counter(n.op_type for n in g.node).items())


def run_onnx(path, feeds):
    model = onnx.load(path)
    try:
        from onnx.reference import ReferenceEvaluator
        how = "onnx.reference.ReferenceEvaluator"
        outs = ReferenceEvaluator(model).run(None, feeds)
    except ImportError:
        import onnx_eval
        how = "models/onnx_eval.py (numpy)"
        outs = onnx_eval.run(model, feeds)
    names = [o.name for o in model.graph.output]
    return dict(zip(names, outs)), how


def compare(path, feeds, expected):
    got, how = run_onnx(path, feeds)
    worst = 0.0
    for name, ref in expected.items():
        g = got[name]
        assert g.shape == ref.shape, f"{path}: {name} shape {g.shape} != {ref.shape}"
        rel = float(np.abs(g.astype(np.float64) - ref).max() / max(np.abs(ref).max(), 1e-30))
        worst = max(worst, rel)
        if rel > RTOL:
            raise SystemExit(f"{path}: output {name} differs from torch: max|diff|/max|ref| = "
                             f"{rel:.2e} > {RTOL:g}")
    print(f"  checked with {how}: max|onnx - torch| / max|torch| = {worst:.2e} "
          f"over {len(expected)} outputs (limit {RTOL:g})")


def perplexity_ref(m, data, window=PPL_WINDOW, batch=32):
    """Nats per byte of `data` (uint8 array) as `qforge-run MODULE perplexity --window W`
    defines it: the bytes are cut into consecutive non-overlapping windows of W bytes (the
    last may be shorter; a last window of one byte is dropped), each window is run from an
    empty context and scored on predicting its bytes 1..end-1 from the bytes before them in
    the same window; the result is the mean over all scored bytes."""
    ids = torch.from_numpy(data.astype(np.int64))
    total = len(ids)
    n_full = total // window
    tail = total - n_full * window
    nll, count = 0.0, 0
    full = ids[: n_full * window].view(n_full, window)
    with torch.no_grad():
        for i in range(0, n_full, batch):
            w = full[i:i + batch]
            logits = m(w[:, :-1]).double()
            nll += torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1),
                reduction="sum").item()
            count += w[:, 1:].numel()
        if tail >= 2:
            w = ids[n_full * window:][None, :]
            logits = m(w[:, :-1]).double()
            nll += torch.nn.functional.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), w[:, 1:].reshape(-1),
                reduction="sum").item()
            count += tail - 1
    return nll / count, count


def write_perplexity_ref(m, d):
    with open(os.path.join(train_lm.DATA, "val.txt"), "rb") as fh:
        val = np.frombuffer(fh.read(), dtype=np.uint8)
    ref = {"text": "models/data/val.txt", "window": PPL_WINDOW, "runs": []}
    for n in (PPL_PREFIX, len(val)):
        nats, count = perplexity_ref(m, val[:n])
        ref["runs"].append({"bytes": int(n), "predictions": int(count),
                            "nats_per_byte": nats, "perplexity": float(np.exp(nats))})
        print(f"  torch perplexity, first {n} bytes of val.txt, window {PPL_WINDOW}: "
              f"{nats:.6f} nats/byte (perplexity {np.exp(nats):.4f})")
    with open(os.path.join(d, "ref_perplexity.json"), "w") as fh:
        json.dump(ref, fh, indent=1)
        fh.write("\n")


def export_one(name, check, root=HERE, decode_only=False):
    d = os.path.join(root, name)
    full_path = os.path.join(d, f"{name}.onnx")
    pt = os.path.join(d, "model.pt")
    if os.path.exists(pt):
        m, _ = train_lm.load(name, pt)
    elif decode_only:
        m = train_lm.load_onnx(name, full_path)
    else:
        sys.exit(f"{pt} not found (train it, or use --decode-only)")
    c = m.c
    H, hd, L = c["n_heads"], c["d_model"] // c["n_heads"], c["n_layers"]
    with open(os.path.join(train_lm.DATA, "val.txt"), "rb") as fh:
        window = np.frombuffer(fh.read(REF_LEN), dtype=np.uint8).astype(np.int64)[None, :]
    ids = torch.from_numpy(window.copy())

    # Full form.
    with torch.no_grad():
        if not decode_only:
            export(Full(m), (ids,), full_path, ["input_ids"], ["logits"],
                   {"input_ids": {1: "T"}, "logits": {1: "T"}})
        ref_logits = m(ids).float().numpy()
        if not decode_only:
            np.save(os.path.join(d, "ref_input_ids.npy"), window)
            np.save(os.path.join(d, "ref_logits.npy"), ref_logits)

    # Decode form (decoder with past).
    dec_path = os.path.join(d, f"{name}-decode.onnx")
    in_names, out_names = decode_names(L)
    dyn = {"input_ids": {1: "sequence_length"}, "position_ids": {1: "sequence_length"},
           "attention_mask": {1: "total_sequence_length"}, "logits": {1: "sequence_length"}}
    dyn.update({n: {2: "past_sequence_length"} for n in in_names[3:]})
    dyn.update({n: {2: "total_sequence_length"} for n in out_names[1:]})
    split = REF_LEN - 4
    with torch.no_grad():
        # Tracing arguments: 3 new tokens after a cache of 5 (neither may be 1, so that
        # both stay dynamic).
        g = torch.Generator().manual_seed(0)
        dummy_past = [(torch.randn(1, H, 5, hd, generator=g), torch.randn(1, H, 5, hd, generator=g))
                      for _ in range(L)]
        dummy = decode_feeds(ids[:, :3], dummy_past)
        export(Decode(m), tuple(dummy[n] for n in in_names), dec_path, in_names, out_names, dyn)
        # Reference: a prefill call over bytes 0..split-1 from an empty cache, then one
        # call over bytes split..63.
        empty = [(torch.zeros(1, H, 0, hd), torch.zeros(1, H, 0, hd)) for _ in range(L)]
        pre = decode_feeds(ids[:, :split], empty)
        _, past = m.cached(pre["input_ids"], pre["attention_mask"], pre["position_ids"], empty)
        feeds = decode_feeds(ids[:, split:], past)
        outs = Decode(m)(*[feeds[n] for n in in_names])
        feeds = {n: t.numpy().copy() for n, t in feeds.items()}
        dec_ref = {n: t.float().numpy() for n, t in zip(out_names, outs)}
    step_vs_full = float(np.abs(dec_ref["logits"][0] - ref_logits[0, split:]).max())
    assert step_vs_full < 1e-4, f"decode form differs from the full model: {step_vs_full}"
    rd = os.path.join(d, "decode_ref")
    if os.path.isdir(rd):
        for f in os.listdir(rd):
            os.remove(os.path.join(rd, f))
    os.makedirs(rd, exist_ok=True)
    for n, a in list(feeds.items()) + list(dec_ref.items()):
        np.save(os.path.join(rd, n + ".npy"), a)

    for p in ([] if decode_only else [full_path]) + [dec_path]:
        size = os.path.getsize(p)
        print(f"{p}: {size} bytes ({size / 2**20:.2f} MiB)")
        assert size < 16 * 10 ** 6, f"{p} is over 16 MB"
        print("  ops: " + ", ".join(f"{op} {n}" for op, n in op_counts(p)))
    print(f"  decode form logits vs full logits at positions {split}..{REF_LEN - 1}: "
          f"max|diff| = {step_vs_full:.2e}")
    if not decode_only:
        write_perplexity_ref(m, d)
    if check:
        if not decode_only:
            compare(full_path, {"input_ids": window}, {"logits": ref_logits})
        compare(dec_path, feeds, dec_ref)


def synthetic_config(d_model, layers, heads=None, d_ff=None):
    """The bundled llama's configuration (models/train_lm.py) at another size: `heads`
    defaults to d_model / 128 (head_dim 128), `d_ff` to 8/3 d_model rounded up to a
    multiple of 256, as in LLaMA."""
    c = dict(train_lm.CONFIGS["llama"])
    heads = heads or max(1, d_model // 128)
    assert d_model % heads == 0 and (d_model // heads) % 2 == 0, \
        f"d_model {d_model} is not a multiple of 2 * heads ({heads})"
    c.update(d_model=d_model, n_layers=layers, n_heads=heads,
             d_ff=d_ff or -(-8 * d_model // 3 // 256) * 256)
    return c


def export_synthetic(d, config, seed=0, name="model"):
    """Export a random-weight model built by train_lm.build(config) in the full-sequence
    form (input_ids int64 [1, T], T dynamic -> logits) to d/<name>.onnx, with every
    initializer stored as ONNX external data in the one file d/<name>.onnx.data. No reference
    data and no check against torch (too slow at this size). Initializers get their torch
    names as in rename_initializers, matched by shape and a few values so that no full copy
    of the weights is compared or kept."""
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, f"{name}.onnx")
    data = f"{name}.onnx.data"
    tmp = path + ".tmp"
    torch.manual_seed(seed)
    with torch.no_grad():
        m = train_lm.build(config).eval()
        n_params = train_lm.n_params(m)
        print(f"synthetic {config['arch']}: {n_params} parameters "
              f"({4 * n_params / 2**30:.2f} GiB float32), config {config}", flush=True)

        # A weight the exporter stored transposed for MatMul ([in, out]) is recognised by
        # its shape and its first 16 values, W[:16, 0], read without transposing W.
        transposed = {}
        for n, t in m.state_dict().items():
            if t.dim() == 2:
                transposed[((t.shape[1], t.shape[0]),
                            t[:16, 0].contiguous().numpy().tobytes())] = n + ".T"
        ids = torch.zeros(1, 8, dtype=torch.int64)
        kw = {}
        if "dynamo" in inspect.signature(torch.onnx.export).parameters:
            kw["dynamo"] = False
        torch.onnx.export(Full(m), (ids,), tmp, opset_version=17, input_names=["input_ids"],
                          output_names=["logits"],
                          dynamic_axes={"input_ids": {1: "T"}, "logits": {1: "T"}},
                          do_constant_folding=True, **kw)
    del m
    model = onnx.load(tmp)
    os.remove(tmp)
    new = {}
    for init in model.graph.initializer:
        if init.name.startswith("m."):
            n = init.name[2:]
        elif len(init.dims) == 2:
            a = onnx.numpy_helper.to_array(init)
            n = transposed.get((a.shape, a.reshape(-1)[:16].tobytes()))
            del a
        else:
            n = None
        if n is not None and n not in new.values():
            new[init.name] = n
        init.name = new.get(init.name, init.name)
    for node in model.graph.node:
        node.input[:] = [new.get(x, x) for x in node.input]
    if os.path.exists(os.path.join(d, data)):
        os.remove(os.path.join(d, data))
    onnx.save_model(model, path, save_as_external_data=True, all_tensors_to_one_file=True,
                    location=data, size_threshold=1024)
    del model
    onnx.checker.check_model(path)
    sizes = [os.path.getsize(p) for p in (path, os.path.join(d, data))]
    print(f"{path}: {sizes[0]} bytes; {os.path.join(d, data)}: {sizes[1]} bytes "
          f"({sizes[1] / 2**30:.2f} GiB)")
    return path


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", default=["llama", "gpt2"])
    ap.add_argument("--no-check", action="store_true", help="skip the ONNX-vs-torch check")
    ap.add_argument("--decode-only", action="store_true", help="rewrite only the decode form "
                    "and decode_ref/ (weights from <name>.onnx when model.pt is absent)")
    ap.add_argument("--root", default=HERE, help="directory holding <name>/model.pt, where the "
                    "exports are written (default: models/)")
    ap.add_argument("--synthetic", metavar="DIR", help="instead: export a random-weight llama "
                    "of the size below to DIR/model.onnx, weights in DIR/model.onnx.data")
    ap.add_argument("--d-model", type=int, default=2048, help="--synthetic: model width")
    ap.add_argument("--layers", type=int, default=8, help="--synthetic: number of layers")
    ap.add_argument("--heads", type=int, help="--synthetic: default d_model / 128")
    ap.add_argument("--d-ff", type=int, help="--synthetic: MLP hidden size, default 8/3 "
                    "d_model rounded up to a multiple of 256")
    ap.add_argument("--seed", type=int, default=0, help="--synthetic: weight seed")
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.synthetic:
        export_synthetic(args.synthetic, synthetic_config(args.d_model, args.layers,
                                                          args.heads, args.d_ff), args.seed)
        return
    for name in args.names:
        export_one(name, not args.no_check, args.root, args.decode_only)


if __name__ == "__main__":
    main()
