"""encoder_lm.py DIR  (needs python3-torch; the outputs are committed in test/e2e/Inputs/)

A byte-level language model built from torch's own nn.TransformerEncoder (pre-norm, GELU,
learned positions, 2 layers of width 64 with 4 heads, an untied head), with the causal mask
computed in the graph from torch.arange(T), exported by torch.onnx with the sequence length
dynamic: the export has a Range whose limit comes from Shape, and the two layers' equal
weights may be stored once. DIR gets encoder_lm.onnx, and encoder_lm_ids<T>.npy (the first
T bytes of a sentence as input ids) and encoder_lm_ref<T>.npy (torch's logits for them) for
T = 48 and T = 5.
"""
import inspect
import sys

import numpy as np
import torch


class EncoderLM(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        self.embed = torch.nn.Embedding(256, 64)
        self.pos = torch.nn.Embedding(128, 64)
        layer = torch.nn.TransformerEncoderLayer(64, 4, 128, dropout=0.0, activation="gelu",
                                                 batch_first=True, norm_first=True)
        self.encoder = torch.nn.TransformerEncoder(layer, 2, enable_nested_tensor=False)
        self.head = torch.nn.Linear(64, 256)

    def forward(self, input_ids):
        T = input_ids.shape[1]
        positions = torch.arange(T)
        mask = positions[None, :] > positions[:, None]
        h = self.embed(input_ids) + self.pos(positions)[None]
        h = self.encoder(h, mask=mask)
        return self.head(h)


def main():
    d = sys.argv[1]
    out = f"{d}/encoder_lm.onnx"
    text = b"It is a truth universally acknowledged, that a single man in possession"
    ids = torch.from_numpy(np.frombuffer(text, dtype=np.uint8).astype(np.int64)[None, :48].copy())
    model = EncoderLM().eval()
    kw = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kw["dynamo"] = False
    with torch.no_grad():
        torch.onnx.export(model, (ids[:, :16],), out, opset_version=17,
                          input_names=["input_ids"], output_names=["logits"],
                          dynamic_axes={"input_ids": {1: "T"}, "logits": {1: "T"}}, **kw)
        for T in (48, 5):
            np.save(f"{d}/encoder_lm_ids{T}.npy", ids[:, :T].numpy())
            np.save(f"{d}/encoder_lm_ref{T}.npy", model(ids[:, :T]).numpy())
    import onnx
    ops = sorted({n.op_type for n in onnx.load(out).graph.node})
    print("ops:", " ".join(ops))


if __name__ == "__main__":
    main()
