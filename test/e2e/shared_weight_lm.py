"""shared_weight_lm.py OUT.onnx IDS.npy [--dynamic-batch]

A byte-level language model in which one nn.Linear is applied twice: torch.onnx stores
its weight as one initializer ("onnx::MatMul_<n>", [in, out]) read by two MatMuls (one
through an Identity), as exporters do for tied or deduplicated weights. Embedding 256 x 64, the shared 64 x 64
linear twice with residual ReLU blocks, a 64 x 256 head; random weights from a seed, with
four embedding channels 8x larger (salient channels, so that AWQ's scales are not 1).
IDS.npy gets 64 bytes of text-like input ids for running it. With --dynamic-batch the
batch dimension of input_ids is dynamic too ('batch').
"""
import inspect
import sys

import numpy as np
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


def main():
    out, ids_path = sys.argv[1], sys.argv[2]
    ids = torch.from_numpy(np.frombuffer(b"It was the best of times, it was the worst of "
                                         b"times, it was the age of wisdom", dtype=np.uint8)
                           .astype(np.int64)[None, :64].copy())
    axes = {0: "batch", 1: "T"} if "--dynamic-batch" in sys.argv[3:] else {1: "T"}
    kw = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kw["dynamo"] = False
    torch.onnx.export(SharedLM().eval(), (ids,), out, opset_version=17,
                      input_names=["input_ids"], output_names=["logits"],
                      dynamic_axes={"input_ids": dict(axes), "logits": dict(axes)}, **kw)
    np.save(ids_path, ids.numpy())
    import onnx
    graph = onnx.load(out).graph
    alias = {n.output[0]: n.input[0] for n in graph.node if n.op_type == "Identity"}
    reads = {}
    for node in graph.node:
        for name in node.input:
            if node.op_type == "MatMul":
                name = alias.get(name, name)
                reads[name] = reads.get(name, 0) + 1
    shared = [n for n, c in reads.items() if c > 1 and n in {i.name for i in graph.initializer}]
    print(f"initializers read by two MatMuls: {len(shared)}")


if __name__ == "__main__":
    main()
