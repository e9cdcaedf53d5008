"""shared_weight_lm.py export DIR | describe MODEL.onnx

A byte-level language model in which one nn.Linear is applied twice: torch.onnx stores
its weight as one initializer ("onnx::MatMul_<n>", [in, out]) read by two MatMuls (one
through an Identity), as exporters do for tied or deduplicated weights. Embedding
256 x 64, the shared 64 x 64 linear twice with residual ReLU blocks, a 64 x 256 head;
random weights from a seed, with four embedding channels 8x larger (salient channels, so
that AWQ's scales are not 1).

export (needs python3-torch) writes into DIR, committed as test/e2e/Inputs/:
  shared_lm.onnx     input_ids ['batch', 'T']
  shared_lm_ids.npy  64 bytes of text as input ids [1, 64]
describe (needs only onnx) prints how many initializers two MatMuls read.
"""
import inspect
import os
import sys

import numpy as np
import onnx


def export(d):
    import torch

    class SharedLM(torch.nn.Module):
        def __init__(self):
            super().__init__()
            torch.manual_seed(5)
            self.embed = torch.nn.Embedding(256, 64)
            self.mix = torch.nn.Linear(64, 64, bias=False)
            self.head = torch.nn.Linear(64, 256)
            with torch.no_grad():  # a few salient input channels, for AWQ to protect
                self.embed.weight[:, :4] *= 8.0

        def forward(self, input_ids):
            h = self.embed(input_ids)
            h = h + torch.relu(self.mix(h))
            h = h + torch.relu(self.mix(h))
            return self.head(h)

    ids = torch.from_numpy(np.frombuffer(b"It was the best of times, it was the worst of "
                                         b"times, it was the age of wisdom", dtype=np.uint8)
                           .astype(np.int64)[None, :64].copy())
    kw = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kw["dynamo"] = False
    model = SharedLM().eval()
    axes = {0: "batch", 1: "T"}
    torch.onnx.export(model, (ids,), os.path.join(d, "shared_lm.onnx"), opset_version=17,
                      input_names=["input_ids"], output_names=["logits"],
                      dynamic_axes={"input_ids": dict(axes), "logits": dict(axes)}, **kw)
    np.save(os.path.join(d, "shared_lm_ids.npy"), ids.numpy())


def describe(path):
    graph = onnx.load(path).graph
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
    inits = {i.name for i in graph.initializer}
    reads = {}
    for node in graph.node:
        if node.op_type == "MatMul":
            for name in node.input:
                name = alias.get(name, name)
                reads[name] = reads.get(name, 0) + 1
    shared = [n for n, c in reads.items() if c > 1 and n in inits]
    print(f"initializers read by two MatMuls: {len(shared)}")


if __name__ == "__main__":
    (export if sys.argv[1] == "export" else describe)(sys.argv[2])
