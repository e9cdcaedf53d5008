#!/usr/bin/env python3
"""Writes the torch references of qf-grad's gradients (needs torch; run it with
/usr/bin/python3 after changing a bundled model, then commit the output):
test/e2e/Inputs/grad_<model>.npz for the bundled llama and gpt2 on the first T
bytes of the validation text.

Each file holds the token window `ids` [1, T], the mean next-token
cross-entropy `loss` (what a Hugging Face causal LM computes with
labels = input_ids), and for every constant linear weight as the ONNX file
stores it ([in, out], named like its initializer) the gradient's norm and its
projections on two seeded random unit directions (see directions() in
check_grad.py); for a few weights also the whole gradient. For llama also the
gradient of layers.0.q on the window one byte later (`later:`), for qf-fisher's test. gpt2's output head
is tied to its token embedding: the reference is the gradient of the head's
use only (what qf-grad differentiates: the linear's weight), d loss/d logits
transposed times the final hidden states.
"""
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "models"))
sys.path.insert(0, HERE)
import train_lm  # noqa: E402
from check_grad import directions  # noqa: E402

T = 64
FULL = {"llama": ["layers.0.q.weight.T", "head.weight.T"],
        "gpt2": ["layers.0.qkv.weight.T", "wte.weight.T"]}


def main():
    torch.manual_seed(0)
    for name in ("llama", "gpt2"):
        path = os.path.join(ROOT, "models", name, f"{name}.onnx")
        m = train_lm.load_onnx(name, path).float().eval()
        with open(os.path.join(train_lm.DATA, "val.txt"), "rb") as f:
            ids = np.frombuffer(f.read(T), dtype=np.uint8).astype(np.int64)[None, :]
        hidden = {}
        final_norm = m.ln_f if name == "gpt2" else m.norm
        final_norm.register_forward_hook(lambda mod, i, o: hidden.update(h=o))
        x = torch.from_numpy(ids.copy())
        logits = m(x)
        logits.retain_grad()
        loss = torch.nn.functional.cross_entropy(logits[0, :-1], x[0, 1:])
        loss.backward()
        grads = {}
        for pname, p in m.named_parameters():
            if p.dim() == 2 and pname not in ("wte.weight", "wpe.weight", "embed.weight"):
                grads[pname + ".T"] = p.grad.detach().numpy().T
        if name == "gpt2":
            head = logits.grad[0].T @ hidden["h"][0]  # [V, d], the torch layout
            grads["wte.weight.T"] = head.detach().numpy().T
        out = {"ids": ids, "loss": np.float64(loss.item()),
               "names": np.array(sorted(grads))}
        for n in sorted(grads):
            g = grads[n].astype(np.float64)
            r = directions(n, g.shape)
            out["norm:" + n] = np.linalg.norm(g)
            out["proj:" + n] = np.array([(g * d).sum() for d in r])
            if n in FULL[name]:
                out["grad:" + n] = grads[n].astype(np.float32)
        if name == "llama":
            # For qf-fisher's test: the gradient of the window one byte later.
            m.zero_grad()
            with open(os.path.join(train_lm.DATA, "val.txt"), "rb") as f:
                later = np.frombuffer(f.read(T + 1)[1:], dtype=np.uint8).astype(np.int64)[None, :]
            y = torch.from_numpy(later.copy())
            torch.nn.functional.cross_entropy(m(y)[0, :-1], y[0, 1:]).backward()
            out["later:layers.0.q.weight.T"] = m.layers[0].q.weight.grad.detach().numpy().T.astype(np.float32)
        dest = os.path.join(HERE, "Inputs", f"grad_{name}.npz")
        np.savez_compressed(dest, **out)
        print(f"{dest}: loss {loss.item():.6f}, {len(grads)} weights")


if __name__ == "__main__":
    main()
