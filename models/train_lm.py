#!/usr/bin/python3
"""Train qforge's byte-level test language models (vocabulary 256, no tokenizer).

Two small decoders in plain torch:
  llama  d_model 256, 4 layers, 8 heads, SwiGLU MLP (hidden 768), RMSNorm (eps 1e-5), rotary
         position embeddings (rotate-half form, base 10000), untied output head, no biases.
  gpt2   d_model 192, 4 layers, 6 heads, LayerNorm (eps 1e-5), GELU (tanh approximation),
         MLP hidden 768, learned positions (max 512), biases everywhere, output head tied to
         the token embedding.
Both are pre-norm, causal, with at most MAX_POS = 512 positions.

Training: AdamW (betas 0.9/0.95, weight decay 0.1 on matrices), linear warm-up then cosine
decay to 10% of the peak rate, random 257-byte windows of models/data/train.txt (inputs are
the first 256 bytes, targets the next 256), seeded. With --minutes, the number of steps is
re-estimated from the measured step time so that the schedule ends at the time budget; with
--steps it is fixed (and the run is deterministic). Validation: see val_loss().

Usage:
  OMP_WAIT_POLICY=PASSIVE nice -n 19 /usr/bin/python3 models/train_lm.py llama --minutes 25
  OMP_WAIT_POLICY=PASSIVE nice -n 19 /usr/bin/python3 models/train_lm.py gpt2 --minutes 12
"""

import argparse
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, "data")
VOCAB = 256
CONTEXT = 256
MAX_POS = 512

CONFIGS = {
    "llama": dict(arch="llama", d_model=256, n_layers=4, n_heads=8, d_ff=768, norm_eps=1e-5,
                  rope_base=10000.0, max_pos=MAX_POS, vocab=VOCAB),
    "gpt2": dict(arch="gpt2", d_model=192, n_layers=4, n_heads=6, d_ff=768, norm_eps=1e-5,
                 max_pos=MAX_POS, vocab=VOCAB),
}


# --------------------------------------------------------------------------- models
#
# forward(ids) -> logits over all positions (causal).
# step(ids[1,1], position[1], past) -> logits[1,1,V], present: one decode step with a KV
# cache; past/present are lists of (key, value), each [1, heads, P, head_dim].
#
# Batch size 1 is written as a constant while tracing for export, so that the exported
# graph reshapes with constant shapes; only the sequence length is dynamic.

def _batch(x):
    return 1 if torch.jit.is_tracing() else x.shape[0]


def future_mask(n):
    """bool [n, n], True where key position > query position (attention forbidden)."""
    return torch.triu(torch.ones(n, n, dtype=torch.bool), diagonal=1)


def cache_mask(attention_mask, position_ids, key_positions):
    """bool [S, P+S], True where attention is forbidden, for S new tokens at position_ids
    [1, S] after P cached ones: a query sees the keys at or before its own position whose
    attention_mask [1, P+S] is 1. key_positions is the constant arange(max_pos), sliced to
    P+S here (a slice of a constant keeps the export free of Range and CumSum)."""
    n = attention_mask.shape[1]
    keys = key_positions[:n]
    return (keys[None, :] > position_ids[0][:, None]) | (attention_mask[0] == 0)[None, :]


class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(d))

    def forward(self, x):
        ms = (x * x).mean(-1, keepdim=True)
        return x / torch.sqrt(ms + self.eps) * self.weight


def rotate_half(x, h):
    """(x1, x2) -> (-x2, x1) over the last axis, halves of size h."""
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def attend(q, k, v, mask, hd):
    """q [B,H,Tq,hd], k/v [B,H,Tk,hd]; mask None or bool [Tq,Tk] (True = forbidden)."""
    scores = torch.matmul(q, k.transpose(-1, -2)) * (1.0 / math.sqrt(hd))
    if mask is not None:
        scores = scores.masked_fill(mask, float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), v)


class LlamaBlock(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.d = d = c["d_model"]
        self.h = c["n_heads"]
        self.hd = d // self.h
        self.attn_norm = RMSNorm(d, c["norm_eps"])
        self.q = nn.Linear(d, d, bias=False)
        self.k = nn.Linear(d, d, bias=False)
        self.v = nn.Linear(d, d, bias=False)
        self.o = nn.Linear(d, d, bias=False)
        self.mlp_norm = RMSNorm(d, c["norm_eps"])
        self.gate = nn.Linear(d, c["d_ff"], bias=False)
        self.up = nn.Linear(d, c["d_ff"], bias=False)
        self.down = nn.Linear(c["d_ff"], d, bias=False)

    def forward(self, x, cos, sin, mask, past=None):
        B, d = _batch(x), self.d
        h = self.attn_norm(x)
        q = self.q(h).view(B, -1, self.h, self.hd).transpose(1, 2)
        k = self.k(h).view(B, -1, self.h, self.hd).transpose(1, 2)
        v = self.v(h).view(B, -1, self.h, self.hd).transpose(1, 2)
        q = q * cos + rotate_half(q, self.hd // 2) * sin
        k = k * cos + rotate_half(k, self.hd // 2) * sin
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        a = attend(q, k, v, mask, self.hd).transpose(1, 2).reshape(B, -1, d)
        x = x + self.o(a)
        h = self.mlp_norm(x)
        x = x + self.down(F.silu(self.gate(h)) * self.up(h))
        return x, (k, v)


class Llama(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        d, hd = c["d_model"], c["d_model"] // c["n_heads"]
        self.embed = nn.Embedding(c["vocab"], d)
        self.layers = nn.ModuleList([LlamaBlock(c) for _ in range(c["n_layers"])])
        self.norm = RMSNorm(d, c["norm_eps"])
        self.head = nn.Linear(d, c["vocab"], bias=False)
        inv = 1.0 / (c["rope_base"] ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
        ang = torch.arange(c["max_pos"], dtype=torch.float64)[:, None] * inv[None, :]
        ang = torch.cat([ang, ang], dim=-1)  # [max_pos, hd]: frequency i at i and i + hd/2
        self.register_buffer("rope_cos", ang.cos().float(), persistent=False)
        self.register_buffer("rope_sin", ang.sin().float(), persistent=False)
        self.register_buffer("mask", future_mask(c["max_pos"]), persistent=False)
        self.register_buffer("key_positions", torch.arange(c["max_pos"]), persistent=False)
        for n, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * c["n_layers"]) if n.endswith(("o.weight", "down.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)

    def forward(self, ids):
        T = ids.shape[1]
        x = self.embed(ids)
        cos, sin, mask = self.rope_cos[:T], self.rope_sin[:T], self.mask[:T, :T]
        for layer in self.layers:
            x, _ = layer(x, cos, sin, mask)
        return self.head(self.norm(x))

    def step(self, ids, position, past):
        x = self.embed(ids)
        cos, sin = self.rope_cos[position], self.rope_sin[position]  # [1, hd]
        present = []
        for layer, kv in zip(self.layers, past):
            x, kv = layer(x, cos, sin, None, kv)
            present.append(kv)
        return self.head(self.norm(x)), present

    def cached(self, ids, attention_mask, position_ids, past):
        """S new tokens after P cached ones (Hugging Face's decoder-with-past form)."""
        x = self.embed(ids)
        pos = position_ids[0]
        cos, sin = self.rope_cos[pos], self.rope_sin[pos]  # [S, hd]
        mask = cache_mask(attention_mask, position_ids, self.key_positions)
        present = []
        for layer, kv in zip(self.layers, past):
            x, kv = layer(x, cos, sin, mask, kv)
            present.append(kv)
        return self.head(self.norm(x)), present


class GPT2Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.d = d = c["d_model"]
        self.h = c["n_heads"]
        self.hd = d // self.h
        self.ln1 = nn.LayerNorm(d, eps=c["norm_eps"])
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, eps=c["norm_eps"])
        self.fc = nn.Linear(d, c["d_ff"])
        self.fc_out = nn.Linear(c["d_ff"], d)

    def forward(self, x, mask, past=None):
        B, d = _batch(x), self.d
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        q = q.reshape(B, -1, self.h, self.hd).transpose(1, 2)
        k = k.reshape(B, -1, self.h, self.hd).transpose(1, 2)
        v = v.reshape(B, -1, self.h, self.hd).transpose(1, 2)
        if past is not None:
            k = torch.cat([past[0], k], dim=2)
            v = torch.cat([past[1], v], dim=2)
        a = attend(q, k, v, mask, self.hd).transpose(1, 2).reshape(B, -1, d)
        x = x + self.proj(a)
        x = x + self.fc_out(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))
        return x, (k, v)


class GPT2(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c = c
        d = c["d_model"]
        self.wte = nn.Embedding(c["vocab"], d)
        self.wpe = nn.Embedding(c["max_pos"], d)
        self.layers = nn.ModuleList([GPT2Block(c) for _ in range(c["n_layers"])])
        self.ln_f = nn.LayerNorm(d, eps=c["norm_eps"])
        self.register_buffer("mask", future_mask(c["max_pos"]), persistent=False)
        self.register_buffer("key_positions", torch.arange(c["max_pos"]), persistent=False)
        for n, p in self.named_parameters():
            if p.dim() == 2:
                std = 0.02 / math.sqrt(2 * c["n_layers"]) if n.endswith(("proj.weight", "fc_out.weight")) else 0.02
                nn.init.normal_(p, 0.0, std)
            elif n.endswith("bias"):
                nn.init.zeros_(p)

    def logits(self, x):
        return F.linear(self.ln_f(x), self.wte.weight)  # tied head

    def forward(self, ids):
        T = ids.shape[1]
        x = self.wte(ids) + self.wpe.weight[:T]
        mask = self.mask[:T, :T]
        for layer in self.layers:
            x, _ = layer(x, mask)
        return self.logits(x)

    def step(self, ids, position, past):
        x = self.wte(ids) + self.wpe(position)
        present = []
        for layer, kv in zip(self.layers, past):
            x, kv = layer(x, None, kv)
            present.append(kv)
        return self.logits(x), present

    def cached(self, ids, attention_mask, position_ids, past):
        """S new tokens after P cached ones (Hugging Face's decoder-with-past form)."""
        x = self.wte(ids) + self.wpe(position_ids[0])
        mask = cache_mask(attention_mask, position_ids, self.key_positions)
        present = []
        for layer, kv in zip(self.layers, past):
            x, kv = layer(x, mask, kv)
            present.append(kv)
        return self.logits(x), present


def build(name_or_config):
    c = CONFIGS[name_or_config] if isinstance(name_or_config, str) else name_or_config
    return {"llama": Llama, "gpt2": GPT2}[c["arch"]](c)


def load(name, path=None):
    path = path or os.path.join(HERE, name, "model.pt")
    ck = torch.load(path, map_location="cpu")
    m = build(ck["config"])
    m.load_state_dict(ck["model"])
    m.eval()
    return m, ck


def load_onnx(name, path):
    """The model whose weights are the initializers of its full-sequence export (names as
    export_lm.rename_initializers gives them; "<parameter>.T" is stored transposed), for
    re-exporting when the checkpoint is not at hand."""
    import onnx
    import onnx.numpy_helper
    m = build(name)
    want = m.state_dict()
    state = {}
    for init in onnx.load(path).graph.initializer:
        a = torch.from_numpy(onnx.numpy_helper.to_array(init).copy())
        n = init.name
        if n in want:
            state[n] = a
        elif n.endswith(".T") and n[:-2] in want and n[:-2] not in state:
            state[n[:-2]] = a.T.contiguous()
    missing = sorted(set(want) - set(state))
    if missing:
        raise SystemExit(f"{path}: no initializer for {', '.join(missing)}")
    m.load_state_dict(state)
    m.eval()
    return m


def n_params(m):
    return sum(p.numel() for p in m.parameters())


# --------------------------------------------------------------------------- data

def read_bytes(name):
    with open(os.path.join(DATA, name), "rb") as fh:
        return torch.from_numpy(np.frombuffer(fh.read(), dtype=np.uint8).astype(np.int64))


@torch.no_grad()
def val_loss(model, val, every=1, batch=32):
    """Mean cross-entropy in nats per byte on val.

    val is cut into non-overlapping windows of CONTEXT = 256 bytes, val[256k : 256k + 256] for
    k = 0 .. len(val)//256 - 1 (the tail shorter than 256 bytes is dropped). Each window is
    run on its own, from an empty context: the model reads bytes 0..254 of the window and is
    scored on predicting bytes 1..255, i.e. 255 predictions per window, every one with its
    full in-window history; the first byte of each window is never scored. The result is the
    mean over all scored bytes. every=n scores only windows k = 0, n, 2n, ... (used for the
    quick estimates printed during training)."""
    model.eval()
    n = len(val) // CONTEXT
    wins = val[: n * CONTEXT].view(n, CONTEXT)[::every]
    total, count = 0.0, 0
    for i in range(0, len(wins), batch):
        w = wins[i:i + batch]
        logits = model(w[:, :-1])
        total += F.cross_entropy(logits.reshape(-1, VOCAB), w[:, 1:].reshape(-1),
                                 reduction="sum").item()
        count += w[:, 1:].numel()
    model.train()
    return total / count


# --------------------------------------------------------------------------- training

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("name", choices=sorted(CONFIGS))
    ap.add_argument("--minutes", type=float, default=10.0, help="training time budget")
    ap.add_argument("--steps", type=int, default=0, help="fixed number of steps (overrides the "
                    "time-based estimate; deterministic)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--weight-decay", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=1234)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--eval-every", type=float, default=120.0, help="seconds between quick "
                    "validation estimates")
    ap.add_argument("--out", default=None, help="checkpoint path (default models/<name>/model.pt)")
    ap.add_argument("--init", default=None, help="start from these weights: a checkpoint (.pt) "
                    "or the model's full-sequence export (.onnx), to train a model further "
                    "(pass another --seed for other batches)")
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    gen = torch.Generator().manual_seed(args.seed)
    train, val = read_bytes("train.txt"), read_bytes("val.txt")
    if not args.init:
        model = build(args.name)
    elif args.init.endswith(".onnx"):
        model = load_onnx(args.name, args.init)
    else:
        model = load(args.name, args.init)[0]
    model.train()
    c = model.c
    print(f"{args.name}: {n_params(model)} parameters, config {c}", flush=True)
    print(f"train {len(train)} bytes, val {len(val)} bytes ({len(val) // CONTEXT} windows)",
          flush=True)

    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": args.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=args.lr, betas=(0.9, 0.95), eps=1e-8)

    budget = args.minutes * 60.0
    total_steps = args.steps or 10 ** 9
    t0 = time.time()
    last_eval = t0
    step, seen, train_time = 0, 0, 0.0
    ema = None
    model.train()
    while step < total_steps:
        lr_scale = min(1.0, (step + 1) / args.warmup)
        if step >= args.warmup:
            prog = min(1.0, (step - args.warmup) / max(1, total_steps - args.warmup))
            lr_scale = 0.1 + 0.9 * 0.5 * (1.0 + math.cos(math.pi * prog))
        for g in opt.param_groups:
            g["lr"] = args.lr * lr_scale
        ts = time.time()
        starts = torch.randint(0, len(train) - CONTEXT - 1, (args.batch,), generator=gen)
        w = torch.stack([train[s:s + CONTEXT + 1] for s in starts.tolist()])
        logits = model(w[:, :-1])
        loss = F.cross_entropy(logits.reshape(-1, VOCAB), w[:, 1:].reshape(-1))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        step += 1
        seen += w[:, 1:].numel()
        train_time += time.time() - ts
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        now = time.time()
        if not args.steps and step >= 20 and (step % 20 == 0):
            # Re-estimate the schedule's length so that it ends at the time budget (the time
            # spent in evaluation is counted through the wall clock).
            per_step = (now - t0) / step
            total_steps = max(step + 1, int(step + (budget - (now - t0)) / per_step))
        if now - last_eval >= args.eval_every:
            last_eval = now
            v = val_loss(model, val, every=8)
            print(f"step {step:6d}/{total_steps} {now - t0:7.0f}s lr {args.lr * lr_scale:.2e} "
                  f"train {ema:.3f} val~ {v:.4f} nats/byte ({seen / train_time:.0f} bytes/s)",
                  flush=True)
    minutes = (time.time() - t0) / 60.0
    v = val_loss(model, val)
    print(f"done: {step} steps, {seen} training bytes, {minutes:.1f} min; "
          f"val {v:.4f} nats/byte = {v / math.log(2):.4f} bits/byte, "
          f"byte perplexity {math.exp(v):.3f}", flush=True)
    out = args.out or os.path.join(HERE, args.name, "model.pt")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    torch.save({"config": c, "model": model.state_dict(), "steps": step, "minutes": minutes,
                "train_bytes": seen, "val_nats_per_byte": v, "args": vars(args)}, out)
    print(f"saved {out}", flush=True)


if __name__ == "__main__":
    main()
