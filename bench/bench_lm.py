#!/usr/bin/python3
"""Times whole language models compiled by qforge against llama.cpp and ONNX Runtime on the
same weights and thread counts, all in one run, and prints a Markdown table with ratios.

  bench/bench_lm.py [--model bundled] [--model synthetic:D:L] [--threads 1,N]
                    [--llama-cpp DIR] [--ort DIR] [--work DIR] [--iterations 5]

What is timed, per model and per thread count (1 and all cores by default):
  prefill  tokens/s of one forward over T = --prefill (256) tokens: T / median time.
  decode   qforge: the T = 1 forward of the full-sequence module (qforge-run bench has no KV
           cache: this is one token with an empty context); ONNX Runtime: the same;
           llama.cpp: llama-bench's tg (--decode-steps = 64 tokens with its KV cache, from an
           empty context).
  kv       the KV-cache decode export (models/<name>/<name>-decode.onnx, decoder with past)
           where the model has one: --decode-steps (64) tokens from a one-token prompt, each
           step's present tensors fed back as the next step's past; qforge as generate runs
           it (qforge-run bench --decode-tokens), ONNX Runtime in the same way.
Engines and variants:
  qforge     float (--method none), RTN 4-bit g32, 4-bit g128, 3-bit g128 (--target cpu;
             with --device cuda, --target cuda:sm_90 and the peers left out)
  llama.cpp  the same weights written as GGUF (f32, converted here with the peer tree's
             gguf-py) and llama-quantize'd from it to Q4_0, Q4_K_M, Q3_K_S; llama-bench
  ORT        onnxruntime-node 1.30, fp32, bench/ort_bench.js, intraOpNumThreads = threads
Ratios are row tokens/s over the peer's tokens/s at the same thread count (> 1: faster than
the peer).

The GGUF conversion is checked first: llama-perplexity on the f32 GGUF (-c 256, second half of
each 256-token chunk scored) and the same figure from the float qforge module's logits
(qforge-run run on each chunk) should agree to about 4 digits (--verify-chunks, bundled model
only unless --verify).

Peers (their absence only blanks their rows):
  llama.cpp  --llama-cpp DIR (env QF_LLAMA_CPP), default /work/peers:
             bash /work/shared/peers/build-llama-cpp.sh /work/peers
             (this llama.cpp has no llama-cli target without its server, so the script stops
             at the build step; then: cmake --build /work/peers/llama.cpp/build
             --target llama-bench llama-perplexity llama-quantize llama-tokenize)
  ORT        --ort DIR (env QF_ORT), default /work/peers/ort:
             mkdir -p DIR && cd DIR && echo '{}' > package.json &&
             ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node@1.30.0

Models:
  bundled          models/llama/llama.onnx (3.5 M parameters) and llama-decode.onnx
  synthetic:D:L    a random-weight llama of width D and L layers, exported with
                   models/export_lm.py --synthetic into --work (kept there and reused).
                   Off by default. At 0.5-1 B parameters, e.g. synthetic:2048:10 (0.52 B)
                   or synthetic:2048:16 (0.82 B), each of the ONNX data, the f32 GGUF and the
                   float module takes about 4 bytes/parameter of disk, the export about 7 GiB
                   of memory (python3-torch), and a qforge prefill call about a minute at
                   2 cores; trim the run:
                     bench/bench_lm.py --model synthetic:2048:10 --work /tmp/qf-lm \
                       --rounds 1 --iterations 1 --decode-iterations 5 \
                       --qforge-variants float,rtn4-g128 --llama-types f32,Q4_0

Example (bundled model, both peers, 1 and all threads; about 6 minutes on 2 busy cores, half
of it the qforge compiles, which --work DIR keeps for the next run):
  /usr/bin/python3 bench/bench_lm.py
"""
import argparse
import datetime
import glob
import json
import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HERE = os.path.dirname(os.path.abspath(__file__))
PEERS = os.environ.get("QF_PEERS", "/work/peers")

QF_VARIANTS = {
    "float": ["--method", "none"],
    "rtn4-g32": ["--method", "rtn", "--bits", "4", "--group-size", "32"],
    "rtn4-g128": ["--method", "rtn", "--bits", "4", "--group-size", "128"],
    "rtn3-g128": ["--method", "rtn", "--bits", "3", "--group-size", "128"],
    # Codebook (SqueezeLLM) kernels: plain k-means tables, which run exactly as fast as
    # the calibrated ones; sqllm3-o adds the CSR part of 0.45% outliers.
    "sqllm4": ["--method", "squeezellm", "--bits", "4", "--sensitivity", "none"],
    "sqllm3-o": ["--method", "squeezellm", "--bits", "3", "--sensitivity", "none",
                 "--outliers", "0.45"],
    # The same with f16 tables (entries converted to f32 in the kernel).
    "sqllm4-f16": ["--method", "squeezellm", "--bits", "4", "--sensitivity", "none",
                   "--lut", "f16"],
}
LLAMA_TYPES = ["f32", "Q4_0", "Q4_K_M", "Q3_K_S"]

HOW_LLAMA = ("bash /work/shared/peers/build-llama-cpp.sh /work/peers (if it stops at "
             "llama-cli: cmake --build /work/peers/llama.cpp/build --target llama-bench "
             "llama-perplexity llama-quantize), then --llama-cpp /work/peers")
HOW_ORT = ("mkdir -p /work/peers/ort && cd /work/peers/ort && echo '{}' > package.json && "
           "ONNXRUNTIME_NODE_INSTALL=skip npm install onnxruntime-node@1.30.0; needs node")


class Failed(Exception):
    pass


def log(msg):
    print(f"[bench_lm {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run(cmd, env=None, timeout=3600, cwd=None):
    """Runs cmd; returns stdout; raises Failed with the tail of stderr."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, env=full_env, timeout=timeout,
                           cwd=cwd)
    except subprocess.TimeoutExpired:
        raise Failed(f"{os.path.basename(cmd[0])}: timed out after {timeout} s")
    except OSError as e:
        raise Failed(f"{cmd[0]}: {e}")
    if p.returncode != 0:
        tail = (p.stderr.strip() or p.stdout.strip()).splitlines()[-3:]
        raise Failed(f"{os.path.basename(cmd[0])} exited {p.returncode}: " + " | ".join(tail))
    return p.stdout + ("\n" + p.stderr if p.stderr else "")


def mib(n):
    return n / 2**20


# --------------------------------------------------------------------------- tools

def wait_for(path, seconds):
    """The qforge build is rebuilt in place by others: wait for a binary to reappear."""
    deadline = time.time() + seconds
    while not os.access(path, os.X_OK):
        if time.time() > deadline:
            return False
        log(f"waiting for {path} (being rebuilt?)")
        time.sleep(10)
    return True


class QForge:
    def __init__(self, bindir, wait, device="cpu"):
        self.device = device
        self.target = "cuda:sm_90" if device == "cuda" else "cpu"
        self.compile = os.path.join(bindir, "qforge-compile")
        self.run_bin = os.path.join(bindir, "qforge-run")
        self.ok = wait_for(self.compile, wait) and wait_for(self.run_bin, wait)
        self.why = None if self.ok else f"qforge binaries missing in {bindir} (build qforge)"
        self.threads_flag = False
        if self.ok:
            # qforge-run may gain `bench --threads N`: pass it when the help lists it.
            try:
                help_text = subprocess.run([self.run_bin, "--help"], capture_output=True,
                                           text=True, timeout=60)
                text = help_text.stdout + help_text.stderr
            except (OSError, subprocess.TimeoutExpired):
                text = ""
            m = re.search(r"^  bench\b.*?(?=^  \S|\Z)", text, re.S | re.M)
            self.threads_flag = bool(m and "--threads" in m.group(0))

    def stamp(self):
        """Identifies the qforge build: a module kept by --work is reused only with the same
        qforge-compile, qforge-run and libqforge*.so (a module from another build of a tree in
        flux can crash the runtime instead of being refused)."""
        wait_for(self.compile, 300)
        wait_for(self.run_bin, 300)
        libs = sorted(glob.glob(os.path.join(os.path.dirname(self.compile), "..", "lib",
                                             "libqforge*.so*")))
        parts = []
        for b in [self.compile, self.run_bin] + libs:
            st = os.stat(b)
            parts.append(f"{os.path.basename(b)} {st.st_size} {st.st_mtime_ns}")
        return "\n".join(parts) + "\n"

    def threads_args(self, threads):
        return ["--threads", str(threads)] if self.threads_flag else []

    def env(self, threads):
        return {"OMP_NUM_THREADS": str(threads)}

    def build(self, onnx_path, out, flags):
        wait_for(self.compile, 300)
        run([self.compile, onnx_path, "-o", out, "--target", self.target, "--quiet"] + flags,
            timeout=6 * 3600)
        return out

    def weight_bytes(self, qfm):
        info = run([self.run_bin, qfm, "info"], timeout=600)
        m = re.search(r"([\d.]+) (B|KiB|MiB|GiB) of weights", info)
        if not m:
            return None
        return float(m.group(1)) * {"B": 1, "KiB": 2**10, "MiB": 2**20, "GiB": 2**30}[m.group(2)]

    def bench_ms(self, qfm, dim, iterations, warmup, threads):
        wait_for(self.run_bin, 300)
        cmd = [self.run_bin, qfm, "bench", "--device", self.device, "--dim", str(dim),
               "--iterations", str(iterations), "--warmup", str(warmup)]
        out = run(cmd + self.threads_args(threads), env=self.env(threads), timeout=6 * 3600)
        m = re.search(r"median_ms ([\d.]+)", out)
        if not m:
            raise Failed("qforge-run bench: no median_ms in its output")
        return float(m.group(1))

    def decode_rate(self, qfm, steps, iterations, threads):
        """Tokens/s of `steps` greedy tokens with the KV cache after a one-token prompt
        (median over `iterations` runs)."""
        wait_for(self.run_bin, 300)
        cmd = [self.run_bin, qfm, "bench", "--device", self.device, "--dim", "1",
               "--decode-tokens", str(steps), "--iterations", str(iterations),
               "--warmup", "1"]
        out = run(cmd + self.threads_args(threads), env=self.env(threads), timeout=6 * 3600)
        m = re.search(r"decode_tok_s ([\d.]+)", out)
        if not m:
            raise Failed("qforge-run bench: no decode_tok_s in its output")
        return float(m.group(1))

    def logits(self, qfm, ids, d):
        """Logits [T, V] of the module for one window of token ids (int64 [T])."""
        inp, outp = os.path.join(d, "ids.npy"), os.path.join(d, "logits.npy")
        np.save(inp, ids.astype(np.int64)[None, :])
        run([self.run_bin, qfm, "run", "--device", self.device, "--input", f"input_ids={inp}",
             "--output", f"logits={outp}"] + self.threads_args(os.cpu_count() or 1),
            env=self.env(os.cpu_count() or 1), timeout=3600)
        return np.load(outp)[0]


class LlamaCpp:
    def __init__(self, d):
        self.ok, self.why = False, None
        d = os.path.abspath(d)
        for tree in (os.path.join(d, "llama.cpp"), d, os.path.dirname(os.path.dirname(d))):
            bindir = os.path.join(tree, "build", "bin")
            if os.access(os.path.join(bindir, "llama-bench"), os.X_OK):
                self.tree, self.bindir = tree, bindir
                break
        else:
            self.why = f"not available (no llama-bench under {d}; {HOW_LLAMA})"
            return
        missing = [t for t in ("llama-bench", "llama-quantize", "llama-perplexity")
                   if not os.access(os.path.join(self.bindir, t), os.X_OK)]
        gguf_py = os.path.join(self.tree, "gguf-py")
        if missing or not os.path.isdir(gguf_py):
            self.why = (f"not available ({', '.join(missing) or 'gguf-py'} missing in "
                        f"{self.tree}; {HOW_LLAMA})")
            return
        if gguf_py not in sys.path:
            sys.path.insert(0, gguf_py)
        try:
            import gguf  # noqa: F401
        except Exception as e:  # noqa: BLE001
            self.why = f"not available (gguf-py does not import: {e})"
            return
        try:
            self.commit = subprocess.run(["git", "-C", self.tree, "log", "-1", "--format=%h"],
                                         capture_output=True, text=True).stdout.strip()
        except OSError:
            self.commit = "?"
        self.ok = True

    def tool(self, name):
        return os.path.join(self.bindir, name)


class Ort:
    def __init__(self, d):
        self.ok, self.why = False, None
        d = os.path.abspath(d)
        node = shutil.which("node")
        if not node:
            self.why = f"not available (no node on PATH; {HOW_ORT})"
            return
        for nm in (os.path.join(d, "node_modules"), os.path.join(d, "ort", "node_modules"), d):
            if os.path.isdir(os.path.join(nm, "onnxruntime-node")):
                self.node_path = nm
                break
        else:
            self.why = f"not available (no onnxruntime-node under {d}; {HOW_ORT})"
            return
        self.node = node
        self.script = os.path.join(HERE, "ort_bench.js")
        self.ok = True

    def bench(self, model, decode_model, threads, prefill, iterations, decode_iterations,
              decode_steps):
        cmd = [self.node, self.script, "--model", model, "--threads", str(threads),
               "--prefill", str(prefill), "--iterations", str(iterations),
               "--decode-iterations", str(decode_iterations),
               "--decode-steps", str(decode_steps)]
        if decode_model:
            cmd += ["--decode-model", decode_model]
        out = run(cmd, env={"NODE_PATH": self.node_path, "OMP_NUM_THREADS": str(threads)},
                  timeout=6 * 3600)
        return json.loads(out.strip().splitlines()[0])


# --------------------------------------------------------------------------- models

def onnx_config(onnx_path):
    """Hyperparameters of an export of models/train_lm.py's llama, read from the graph: the
    weights' shapes, the head count from the [1, -1, H, hd] reshapes, the RMSNorm epsilon and
    the RoPE base checked against the folded cos table."""
    import onnx
    from onnx import numpy_helper
    model = onnx.load(onnx_path, load_external_data=False)
    shapes = {i.name: list(i.dims) for i in model.graph.initializer}
    if "embed.weight" not in shapes or "head.weight.T" not in shapes:
        raise Failed(f"{onnx_path}: not a qforge llama export (no embed.weight / head.weight.T)")
    vocab, d = shapes["embed.weight"]
    layers = 1 + max(int(m.group(1)) for n in shapes
                     for m in [re.match(r"layers\.(\d+)\.", n)] if m)
    d_ff = shapes["layers.0.gate.weight.T"][1]
    heads, eps, cos = None, None, None
    for n in model.graph.node:
        if n.op_type != "Constant" or not n.attribute or not n.attribute[0].HasField("t"):
            continue
        a = numpy_helper.to_array(n.attribute[0].t)
        if a.dtype == np.int64 and a.shape == (4,) and a[0] == 1 and a[1] == -1 \
                and a[2] * a[3] == d:
            heads = int(a[2])
        elif a.dtype == np.float32 and a.size == 1 and "norm/" in n.output[0]:
            eps = float(f"{float(a.reshape(-1)[0]):.6g}")
        elif a.dtype == np.float32 and a.ndim == 2 and np.all(a[0] == 1.0):
            cos = a
    if heads is None:
        raise Failed(f"{onnx_path}: cannot find the head count")
    hd = d // heads
    base = 10000.0  # models/train_lm.py CONFIGS["llama"]["rope_base"]
    max_pos = 512
    if cos is not None:
        max_pos = cos.shape[0]
        inv = 1.0 / (base ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
        ang = np.arange(max_pos, dtype=np.float64)[:, None] * inv[None, :]
        want = np.cos(np.concatenate([ang, ang], axis=1)).astype(np.float32)
        if cos.shape != want.shape or np.abs(cos - want).max() > 1e-5:
            raise Failed(f"{onnx_path}: the RoPE table is not rotate-half with base {base}")
    return dict(vocab=vocab, d_model=d, layers=layers, d_ff=d_ff, heads=heads, head_dim=hd,
                eps=eps if eps is not None else 1e-5, rope_base=base, max_pos=max_pos)


def write_gguf(onnx_path, out, cfg):
    """The ONNX export's weights as an f32 GGUF for llama.cpp (architecture llama, a 256-entry
    byte vocabulary). The model uses the half-split (rotate_half) RoPE convention, llama.cpp
    the interleaved one: the rows of Wq and Wk are permuted per head so that row pairs
    (2i, 2i+1) hold the model's rows (i, i + hd/2)."""
    import gguf
    import onnx
    from onnx import numpy_helper
    model = onnx.load(onnx_path)
    w = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    # torch folds identical initializers (a random model's all-ones norm weights) into one,
    # read by the others' names through Identity nodes.
    alias = {n.output[0]: n.input[0] for n in model.graph.node if n.op_type == "Identity"}
    del model
    H = cfg["heads"]

    def get(name):
        for n in (name, "m." + name):
            seen = 0
            while n not in w and n in alias and seen < 16:
                n, seen = alias[n], seen + 1
            if n in w:
                return np.ascontiguousarray(w[n], dtype=np.float32)
        raise Failed(f"{onnx_path}: no weight {name}")

    def lin(name):  # stored [in, out] for MatMul; GGUF wants torch's [out, in]
        return np.ascontiguousarray(get(name + ".weight.T").T)

    def permute(a):
        return np.ascontiguousarray(
            a.reshape(H, 2, a.shape[0] // H // 2, *a.shape[1:]).swapaxes(1, 2).reshape(a.shape))

    g = gguf.GGUFWriter(out, "llama")
    g.add_name("qforge byte-level llama")
    g.add_context_length(cfg["max_pos"])
    g.add_embedding_length(cfg["d_model"])
    g.add_block_count(cfg["layers"])
    g.add_feed_forward_length(cfg["d_ff"])
    g.add_head_count(H)
    g.add_head_count_kv(H)
    g.add_rope_dimension_count(cfg["head_dim"])
    g.add_rope_freq_base(cfg["rope_base"])
    g.add_layer_norm_rms_eps(cfg["eps"])
    g.add_vocab_size(cfg["vocab"])
    g.add_file_type(gguf.LlamaFileType.ALL_F32)
    # Byte tokens; 0x20 is SentencePiece's "▁" (the tokenizer writes spaces as U+2581 first).
    tokens = [f"<0x{b:02X}>" for b in range(256)]
    tokens[0x20] = "\u2581"
    types = [gguf.TokenType.BYTE] * 256
    types[0x20] = gguf.TokenType.NORMAL
    g.add_tokenizer_model("llama")
    g.add_token_list(tokens)
    g.add_token_scores([0.0] * 256)
    g.add_token_types(types)
    g.add_add_bos_token(False)
    g.add_add_eos_token(False)
    g.add_add_space_prefix(False)
    g.add_tensor("token_embd.weight", get("embed.weight"))
    for i in range(cfg["layers"]):
        p = f"layers.{i}."
        g.add_tensor(f"blk.{i}.attn_norm.weight", get(p + "attn_norm.weight"))
        g.add_tensor(f"blk.{i}.attn_q.weight", permute(lin(p + "q")))
        g.add_tensor(f"blk.{i}.attn_k.weight", permute(lin(p + "k")))
        g.add_tensor(f"blk.{i}.attn_v.weight", lin(p + "v"))
        g.add_tensor(f"blk.{i}.attn_output.weight", lin(p + "o"))
        g.add_tensor(f"blk.{i}.ffn_norm.weight", get(p + "mlp_norm.weight"))
        g.add_tensor(f"blk.{i}.ffn_gate.weight", lin(p + "gate"))
        g.add_tensor(f"blk.{i}.ffn_up.weight", lin(p + "up"))
        g.add_tensor(f"blk.{i}.ffn_down.weight", lin(p + "down"))
    g.add_tensor("output_norm.weight", get("norm.weight"))
    g.add_tensor("output.weight", lin("head"))
    g.write_header_to_file()
    g.write_kv_data_to_file()
    g.write_tensors_to_file()
    g.close()
    return out


def gguf_mix(path):
    """Share of weight bytes per tensor type of a GGUF file, e.g. 'q4_K 71%, q6_K 18%'."""
    import gguf
    r = gguf.GGUFReader(path)
    by = {}
    for t in r.tensors:
        name = t.tensor_type.name
        by[name] = by.get(name, 0) + int(t.n_bytes)
    total = sum(by.values())
    return ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in
                     sorted(by.items(), key=lambda kv: -kv[1])), total


def quantize(lc, f32, out, qtype):
    """llama-quantize; returns (ok, note). A refused type or a fallback is reported."""
    try:
        text = run([lc.tool("llama-quantize"), f32, out, qtype, str(os.cpu_count() or 1)],
                   timeout=6 * 3600)
    except Failed as e:
        return False, f"refused by llama-quantize ({e})"
    falls = re.findall(r"warning: (\S+)\s+- ncols .*?falling back to\s+(\S+)", text, re.S)
    note = ""
    if falls:
        kinds = sorted(set(k for _, k in falls))
        note = f"{len(falls)} tensors fell back to {'/'.join(kinds)}"
    return True, note


# --------------------------------------------------------------------------- verification

def llama_ppl(lc, gguf_path, text_path, chunks, window):
    """llama-perplexity's figure, in f32 throughout: an f32 KV cache and no flash attention
    (whose CPU path moved a random 515 M model's figure by 8e-5 relative; off, it agrees with
    numpy's evaluation of the ONNX graph to 1e-6)."""
    out = run([lc.tool("llama-perplexity"), "-m", gguf_path, "-f", text_path, "-c", str(window),
               "--chunks", str(chunks), "-t", str(os.cpu_count() or 1),
               "-ctk", "f32", "-ctv", "f32", "-fa", "off"], timeout=6 * 3600)
    m = re.search(r"Final estimate: PPL = ([\d.]+)", out)
    if not m:
        raise Failed("llama-perplexity printed no final estimate")
    return float(m.group(1))


def qforge_ppl(qf, qfm, data, chunks, window, d):
    """llama-perplexity's figure computed from the module's logits: each window of `window`
    tokens is run from an empty context; the predictions of tokens window/2 + 1 .. window - 1
    are scored."""
    first = window // 2
    nll, count = 0.0, 0
    for c in range(chunks):
        ids = data[c * window:(c + 1) * window].astype(np.int64)
        logits = qf.logits(qfm, ids, d).astype(np.float64)
        lg = logits[first:window - 1]
        mx = lg.max(axis=1, keepdims=True)
        lse = (mx[:, 0] + np.log(np.exp(lg - mx).sum(axis=1)))
        nll += float((lse - lg[np.arange(len(lg)), ids[first + 1:window]]).sum())
        count += len(lg)
    return float(np.exp(nll / count))


# --------------------------------------------------------------------------- main

class Model:
    """One model of the run: its ONNX exports, its work directory and its configuration."""

    def __init__(self, spec, work, a):
        self.spec = spec
        if spec == "bundled":
            self.name = "llama (bundled)"
            self.onnx = os.path.join(ROOT, "models", "llama", "llama.onnx")
            self.onnx_dec = os.path.join(ROOT, "models", "llama", "llama-decode.onnx")
            self.dir = os.path.join(work, "bundled")
            self.verify = not a.no_verify
        else:
            m = re.fullmatch(r"synthetic:(\d+):(\d+)", spec)
            if not m:
                raise SystemExit(f"bench_lm.py: --model {spec}: expected bundled or "
                                 "synthetic:D:L")
            D, L = int(m.group(1)), int(m.group(2))
            self.name = f"synthetic {D}×{L}"
            self.dir = os.path.join(work, f"synthetic-{D}-{L}")
            self.onnx = os.path.join(self.dir, "model.onnx")
            self.onnx_dec = None
            self.verify = a.verify and not a.no_verify
            if not os.path.exists(self.onnx):
                log(f"exporting {spec} to {self.dir} (models/export_lm.py --synthetic)")
                run([sys.executable, os.path.join(ROOT, "models", "export_lm.py"), "--synthetic",
                     self.dir, "--d-model", str(D), "--layers", str(L)], timeout=24 * 3600)
        if a.no_kv_form:
            self.onnx_dec = None
        os.makedirs(self.dir, exist_ok=True)
        c = self.cfg = onnx_config(self.onnx)
        self.n_params = c["vocab"] * c["d_model"] * 2 + c["d_model"] + c["layers"] * (
            4 * c["d_model"] ** 2 + 3 * c["d_model"] * c["d_ff"] + 2 * c["d_model"])
        self.onnx_bytes = os.path.getsize(self.onnx) + (
            os.path.getsize(self.onnx + ".data") if os.path.exists(self.onnx + ".data") else 0)

    def describe(self):
        c = self.cfg
        return (f"{self.name}: d_model {c['d_model']}, {c['layers']} layers, {c['heads']} heads "
                f"(head_dim {c['head_dim']}), SwiGLU {c['d_ff']}, {self.n_params / 1e6:.2f} M "
                f"parameters, RMSNorm eps {c['eps']:g}, RoPE base {c['rope_base']:g} "
                "(rotate_half)")


def cached(a, path, stamp=None):
    """With --work, an output of an earlier run is reused; with a stamp, only when the file
    path + ".stamp" holds the same one (see QForge.stamp)."""
    if not (a.work and os.path.exists(path)):
        return False
    if stamp is None:
        return True
    try:
        with open(path + ".stamp") as fh:
            return fh.read() == stamp
    except OSError:
        return False


def write_stamp(path, stamp):
    with open(path + ".stamp", "w") as fh:
        fh.write(stamp)


def compile_qforge(qf, model, variants, a, notes):
    """variant -> {"full": qfm, "dec": qfm of the KV-cache form, "bytes": weight bytes,
    "error": why the full form did not compile}."""
    def build(onnx, qfm, v, what=""):
        """Compiles onnx into qfm unless --work holds one from this qforge build."""
        if not cached(a, qfm, qf.stamp()):
            log(f"{model.name}: qforge-compile {v}{what}")
            qf.build(onnx, qfm, QF_VARIANTS[v])
            write_stamp(qfm, qf.stamp())
        return qfm

    modules = {}
    for v in variants:
        entry = modules[v] = {}
        try:
            suffix = "" if qf.device == "cpu" else f".{qf.device}"
            entry["full"] = build(model.onnx, os.path.join(model.dir, f"{v}{suffix}.qfm"), v)
            entry["bytes"] = qf.weight_bytes(entry["full"])
        except Failed as e:
            entry["error"] = str(e)
            continue
        if model.onnx_dec:
            try:
                entry["dec"] = build(model.onnx_dec,
                                     os.path.join(model.dir, f"{v}-decode{suffix}.qfm"),
                                     v, " (KV-cache decode form)")
            except Failed as e:
                notes.append(f"{model.name} qforge {v}: the KV-cache export did not compile: {e}")
    return modules


def make_ggufs(lc, model, ltypes, a, notes):
    """type -> GGUF path for the types llama-quantize made, and type -> note (a refusal or
    the fallbacks it reported)."""
    ggufs, lc_notes = {}, {}
    f32 = os.path.join(model.dir, "f32.gguf")
    try:
        if not cached(a, f32):
            log(f"{model.name}: writing {f32}")
            write_gguf(model.onnx, f32, model.cfg)
    except Failed as e:
        notes.append(f"{model.name}: GGUF conversion failed: {e}")
        return ggufs, lc_notes
    ggufs["f32"] = f32
    for t in ltypes:
        if t == "f32":
            continue
        q = os.path.join(model.dir, f"{t}.gguf")
        if cached(a, q) and os.path.exists(q + ".note"):
            ok, note = True, open(q + ".note").read()
        else:
            log(f"{model.name}: llama-quantize {t}")
            ok, note = quantize(lc, f32, q, t)
            if ok:
                with open(q + ".note", "w") as fh:
                    fh.write(note)
        if ok:
            ggufs[t] = q
        lc_notes[t] = note
    return ggufs, lc_notes


def verify(qf, lc, model, modules, ggufs, a):
    """Checks of the weights the engines run: llama-perplexity on the f32 GGUF against the
    same figure from the float module, and qforge-run perplexity against torch's reference."""
    checks = []
    with open(os.path.join(ROOT, "models", "data", "val.txt"), "rb") as fh:
        data = np.frombuffer(fh.read(), dtype=np.uint8)
    window = 256
    text = os.path.join(model.dir, "val-head.txt")
    with open(text, "wb") as fh:
        fh.write(data[:a.verify_chunks * window].tobytes())
    float_qfm = modules.get("float", {}).get("full") if qf.ok else None
    fig_l = fig_q = None
    if "f32" in ggufs:
        try:
            log(f"{model.name}: llama-perplexity on the f32 GGUF")
            fig_l = llama_ppl(lc, ggufs["f32"], text, a.verify_chunks, window)
        except Failed as e:
            checks.append(f"{model.name}: llama-perplexity failed: {e}")
    if float_qfm:
        try:
            log(f"{model.name}: the same figure from qforge-run run on the float module")
            fig_q = qforge_ppl(qf, float_qfm, data, a.verify_chunks, window, model.dir)
        except Failed as e:
            checks.append(f"{model.name}: qforge-run run failed: {e}")
    if fig_l is not None or fig_q is not None:
        agree = ""
        if fig_l is not None and fig_q is not None:
            same = f"{fig_l:.4g}" == f"{fig_q:.4g}"
            agree = (f"; relative difference {abs(fig_l - fig_q) / fig_q:.1e}: "
                     f"{'they agree' if same else 'they DISAGREE'} to 4 significant digits")
        checks.append(
            f"{model.name}: perplexity on the first {a.verify_chunks} × {window} bytes of "
            f"models/data/val.txt, llama-perplexity's way (-c {window}: each chunk from an empty "
            f"context, its second half scored, {a.verify_chunks * (window - window // 2 - 1)} "
            f"predictions): llama.cpp f32 GGUF "
            f"{'–' if fig_l is None else f'{fig_l:.4f}'} (llama-perplexity prints 4 decimals), qforge float "
            f"module {'–' if fig_q is None else f'{fig_q:.5f}'} (qforge-run run per chunk){agree}")
    ref = os.path.join(os.path.dirname(model.onnx), "ref_perplexity.json")
    if model.spec == "bundled" and os.path.exists(ref) and float_qfm:
        try:
            r = json.load(open(ref))["runs"][0]
            head = os.path.join(model.dir, "val-ref.txt")
            with open(head, "wb") as fh:
                fh.write(data[:r["bytes"]].tobytes())
            cores = os.cpu_count() or 1
            out = run([qf.run_bin, float_qfm, "perplexity", "--device", "cpu", "--text", head,
                       "--window", str(r.get("window", 256))] + qf.threads_args(cores),
                      env=qf.env(cores))
            p = float(re.search(r"perplexity ([\d.]+)", out).group(1))
            checks.append(f"{model.name}: qforge-run perplexity of the float module (every "
                          f"position of {r.get('window', 256)}-byte windows, first "
                          f"{r['bytes']} bytes) {p:.4f}; torch's reference "
                          f"(ref_perplexity.json) {r['perplexity']:.4f}")
        except (Failed, AttributeError, KeyError, ValueError) as e:
            checks.append(f"{model.name}: qforge-run perplexity failed: {e}")
    return checks


def time_all(qf, lc, ort, model, modules, ggufs, threads, a):
    """(engine, variant, threads) -> (prefill, decode, kv) tokens/s, and -> why its timing
    failed (then it is not tried again). Every engine at every thread count is timed --rounds
    times, interleaved so that a change in the machine's load hits all of them alike; the
    median round is kept."""

    def qforge_job(v, th):
        log(f"{model.name}: qforge {v} t={th}")
        entry = modules[v]
        pre = a.prefill / (qf.bench_ms(entry["full"], a.prefill, a.iterations, 1, th) / 1e3)
        dec = 1e3 / qf.bench_ms(entry["full"], 1, a.decode_iterations, 3, th)
        kv = None
        if entry.get("dec"):
            kv = qf.decode_rate(entry["dec"], a.decode_steps,
                                max(3, a.iterations // 2), th)
        return pre, dec, kv

    def ort_job(th):
        log(f"{model.name}: ONNX Runtime t={th}")
        r = ort.bench(model.onnx, model.onnx_dec, th, a.prefill, a.iterations,
                      a.decode_iterations, a.decode_steps)
        return (a.prefill / (r["prefill_ms"] / 1e3), 1e3 / r["t1_ms"],
                a.decode_steps / (r["decode_ms"] / 1e3) if "decode_ms" in r else None)

    def llama_job(t, th):
        log(f"{model.name}: llama-bench {t} t={th}")
        out = run([lc.tool("llama-bench"), "-m", ggufs[t], "-p", str(a.prefill),
                   "-n", str(a.decode_steps), "-t", str(th), "-r", str(a.llama_reps),
                   "-o", "json"] + shlex.split(a.llama_bench_args), timeout=6 * 3600)
        js = json.loads(out[out.index("["):out.rindex("]") + 1])
        pp = [e["avg_ts"] for e in js if e["n_prompt"] == a.prefill and e["n_gen"] == 0]
        tg = [e["avg_ts"] for e in js if e["n_gen"] == a.decode_steps and e["n_prompt"] == 0]
        return (pp[0] if pp else None, tg[0] if tg else None, None)

    jobs = []
    for th in threads:
        if qf.ok:
            jobs += [(("qforge", v, th), lambda v=v, th=th: qforge_job(v, th))
                     for v in modules if "full" in modules[v]]
        if lc.ok:
            jobs += [(("llama.cpp", t, th), lambda t=t, th=th: llama_job(t, th)) for t in ggufs]
        if ort.ok:
            jobs.append((("ort", "fp32", th), lambda th=th: ort_job(th)))
    samples, failed = {}, {}
    for rnd in range(a.rounds):
        log(f"{model.name}: timing round {rnd + 1}/{a.rounds}")
        for key, fn in jobs:
            if key in failed:
                continue
            try:
                sample = fn()
            except (Failed, ValueError, KeyError) as e:
                failed[key] = f"timing failed: {e}"
                continue
            samples.setdefault(key, []).append(sample)

    def median(xs):
        xs = sorted(x for x in xs if x is not None)
        return xs[len(xs) // 2] if xs else None

    results = {k: tuple(median(col) for col in zip(*v)) for k, v in samples.items()}
    return results, failed


def fmt_tps(v):
    if v is None:
        return "–"
    return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"


def fmt_ratio(a, b):
    if a is None or b is None:
        return "n/a"
    return f"{a / b:.2f}×"


def table_rows(qf, lc, ort, model, variants, ltypes, modules, ggufs, lc_notes, results,
               failed, threads):
    sizes = {("qforge", v): modules.get(v, {}).get("bytes") for v in variants}
    sizes[("ort", "fp32")] = model.onnx_bytes
    mixes = {}
    for t, path in ggufs.items():
        try:
            mixes[t], sizes[("llama.cpp", t)] = gguf_mix(path)
        except Exception as e:  # noqa: BLE001
            mixes[t] = f"(cannot read: {e})"
    rows = []
    blank = ["–"] * 7
    for th in threads:
        none = (None, None, None)
        base_q4 = results.get(("llama.cpp", "Q4_0", th), none)
        base_f32 = results.get(("llama.cpp", "f32", th), none)
        base_ort = results.get(("ort", "fp32", th), none)

        def row(engine, label, key, note=""):
            pre, dec, kv = results.get(key, none)
            note = "; ".join(x for x in (note, failed.get(key, "")) if x)
            size = sizes.get(key[:2])
            return [model.name, engine, label, str(th), f"{mib(size):.2f}" if size else "–",
                    fmt_tps(pre), fmt_tps(dec), fmt_tps(kv),
                    f"{fmt_ratio(pre, base_q4[0])} / {fmt_ratio(dec, base_q4[1])}",
                    f"{fmt_ratio(pre, base_f32[0])} / {fmt_ratio(dec, base_f32[1])}",
                    f"{fmt_ratio(pre, base_ort[0])} / {fmt_ratio(dec, base_ort[1])}", note]

        if not qf.ok:
            rows.append([model.name, "qforge", "–", str(th)] + blank + [qf.why])
        for v in variants if qf.ok else []:
            entry = modules.get(v, {})
            note = "" if "full" in entry else f"compile failed: {entry.get('error')}"
            if "full" in entry and model.onnx_dec and not entry.get("dec"):
                note = "the KV-cache form did not compile"
            rows.append(row("qforge", v, ("qforge", v, th), note))
        if not lc.ok:
            rows.append([model.name, "llama.cpp", "–", str(th)] + blank + [lc.why])
        for t in ltypes if lc.ok else []:
            if t in ggufs:
                note = "; ".join(x for x in (mixes.get(t, ""), lc_notes.get(t, "")) if x)
                rows.append(row("llama.cpp", t, ("llama.cpp", t, th), note))
            else:
                rows.append([model.name, "llama.cpp", t, str(th)] + blank
                            + [lc_notes.get(t) or "not converted"])
        if ort.ok:
            rows.append(row("ONNX Runtime", "fp32", ("ort", "fp32", th)))
        else:
            rows.append([model.name, "ONNX Runtime", "fp32", str(th)] + blank + [ort.why])
    return rows


def report(a, qf, lc, ort, rows, notes, checks, seconds):
    commit = subprocess.run(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    dirty = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                           capture_output=True, text=True).stdout.strip()
    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(l.split(":", 1)[1].strip() for l in fh if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    threads_how = ("qforge-run --threads N and OMP_NUM_THREADS" if qf.threads_flag else
                   "OMP_NUM_THREADS (this qforge-run has no --threads)")
    print(f"## bench/bench_lm.py, {datetime.date.today().isoformat()}\n")
    print("```")
    print(" ".join(shlex.quote(x) for x in [sys.executable] + sys.argv))
    print("```\n")
    print(f"qforge {commit or '?'}{' with uncommitted changes' if dirty else ''} (threads: "
          f"{threads_how}); llama.cpp {getattr(lc, 'commit', '?') if lc.ok else 'not available'}"
          f"; onnxruntime-node {'1.30 from ' + ort.node_path if ort.ok else 'not available'}; "
          f"{platform.machine()} {cpu}, {os.cpu_count()} cores; the run took {seconds:.0f} s.\n")
    head = ["model", "engine", "variant", "threads", "weights MiB",
            f"prefill tok/s (T={a.prefill})", "decode tok/s", "KV-form decode tok/s",
            "vs llama.cpp Q4_0 (prefill / decode)", "vs llama.cpp f32 (prefill / decode)",
            "vs ORT fp32 (prefill / decode)", "notes"]
    print("| " + " | ".join(head) + " |")
    print("|" + "|".join("---" if i < 4 or i == len(head) - 1 else "---:"
                         for i in range(len(head))) + "|")
    for r in rows:
        print("| " + " | ".join(r) + " |")
    print()
    print(f"- Each figure is the median of {a.rounds} rounds; a round times every engine and "
          "thread count in turn.")
    print(f"- prefill: {a.prefill} tokens / the median time of one forward over {a.prefill} "
          f"tokens ({a.iterations} timed calls); llama.cpp: llama-bench pp{a.prefill} (mean of "
          f"{a.llama_reps} runs).")
    print("- decode: qforge and ONNX Runtime: 1 / the median time of the full-sequence "
          "model's T = 1 forward (no KV cache, an empty context: qforge-run bench has no cache); "
          f"llama.cpp: llama-bench tg{a.decode_steps} ({a.decode_steps} tokens with its KV cache "
          "from an empty context). The decode ratios use this column.")
    print(f"- KV-form decode: the -decode.onnx export (decoder with past): {a.decode_steps} "
          "greedy tokens after a one-token prompt, each step's present tensors fed back as the "
          "next step's past; qforge: `qforge-run bench --dim 1 --decode-tokens "
          f"{a.decode_steps}` (as generate runs it); ONNX Runtime: the same steps.")
    print("- Ratios: this row's tokens/s over the peer's at the same thread count (> 1: faster "
          "than the peer).")
    print("- weights MiB: qforge: `qforge-run info` weight bytes (codes, scales, zero points); "
          "llama.cpp: tensor bytes in the GGUF (notes: the share of each tensor type); ORT: the "
          "ONNX file(s).")
    for n in notes:
        print(f"- {n}")
    for c in checks:
        print(f"- Check: {c}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("--model", action="append",
                    help="bundled (default) or synthetic:D:L; repeatable")
    ap.add_argument("--threads", default=f"1,{os.cpu_count() or 1}",
                    help="comma list of thread counts (default 1,all cores)")
    ap.add_argument("--prefill", type=int, default=256, help="prefill tokens (default 256)")
    ap.add_argument("--decode-steps", type=int, default=64, help="decode tokens (default 64)")
    ap.add_argument("--iterations", type=int, default=5, help="timed prefill calls (default 5)")
    ap.add_argument("--decode-iterations", type=int, default=100,
                    help="timed T = 1 / KV-step calls (default 100)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="times every measurement is repeated, interleaved across engines; "
                    "the median is reported (default 3)")
    ap.add_argument("--llama-reps", type=int, default=3, help="llama-bench -r (default 3)")
    ap.add_argument("--llama-bench-args", default="",
                    help="more llama-bench options, e.g. '--poll 0' (default: none)")
    ap.add_argument("--qforge-variants", default=",".join(QF_VARIANTS),
                    help=f"subset of {','.join(QF_VARIANTS)}")
    ap.add_argument("--llama-types", default=",".join(LLAMA_TYPES),
                    help=f"subset of {','.join(LLAMA_TYPES)} (f32 is always converted)")
    ap.add_argument("--no-kv-form", action="store_true",
                    help="skip compiling and timing the KV-cache decode export")
    ap.add_argument("--llama-cpp", default=os.environ.get("QF_LLAMA_CPP", PEERS),
                    help="llama.cpp peer: DIR/llama.cpp/build/bin or DIR/build/bin "
                    "(default $QF_LLAMA_CPP or /work/peers)")
    ap.add_argument("--ort", default=os.environ.get("QF_ORT", os.path.join(PEERS, "ort")),
                    help="onnxruntime-node peer: DIR/node_modules/onnxruntime-node "
                    "(default $QF_ORT or /work/peers/ort)")
    ap.add_argument("--device", choices=("cpu", "cuda"), default="cpu",
                    help="where qforge's modules run (cuda: compiled for cuda:sm_90; the "
                    "peers here are CPU builds, so the float module is the baseline)")
    ap.add_argument("--qforge-bin", default=os.environ.get("QFORGE_BIN",
                                                           os.path.join(ROOT, "build", "bin")))
    ap.add_argument("--wait", type=int, default=600,
                    help="seconds to wait for a qforge binary that is being rebuilt")
    ap.add_argument("--work", help="keep intermediate files (modules, GGUFs, synthetic "
                    "exports) in DIR and reuse them; default: a temporary directory")
    ap.add_argument("--verify", action="store_true",
                    help="check the GGUF conversion also for synthetic models")
    ap.add_argument("--no-verify", action="store_true", help="skip the perplexity check")
    ap.add_argument("--verify-chunks", type=int, default=16,
                    help="256-token chunks of models/data/val.txt for the check (default 16)")
    a = ap.parse_args()

    threads = sorted(set(int(t) for t in a.threads.split(",")))
    variants = [v for v in a.qforge_variants.split(",") if v]
    for v in variants:
        if v not in QF_VARIANTS:
            ap.error(f"unknown qforge variant {v}")
    ltypes = [t for t in a.llama_types.split(",") if t]
    if "f32" not in ltypes:
        ltypes = ["f32"] + ltypes

    qf = QForge(a.qforge_bin, a.wait, a.device)
    lc = LlamaCpp(a.llama_cpp)
    ort = Ort(a.ort)
    if a.device == "cuda":
        # llama.cpp and onnxruntime-node here are CPU builds: no GPU peer to compare with.
        for peer in (lc, ort):
            peer.ok, peer.why = False, "not compared on --device cuda (a CPU build here)"
        threads = [1]
        a.no_verify = True
    tmp = None
    if a.work:
        work = os.path.abspath(a.work)
        os.makedirs(work, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="qf-bench-lm-")
        work = tmp.name

    rows, notes, checks = [], [], []
    t0 = time.time()
    try:
        for spec in a.model or ["bundled"]:
            model = Model(spec, work, a)
            notes.append(model.describe())
            modules = compile_qforge(qf, model, variants, a, notes) if qf.ok else {}
            ggufs, lc_notes = make_ggufs(lc, model, ltypes, a, notes) if lc.ok else ({}, {})
            if model.verify:
                checks += verify(qf, lc, model, modules, ggufs, a)
            results, failed = time_all(qf, lc, ort, model, modules, ggufs, threads, a)
            rows += table_rows(qf, lc, ort, model, variants, ltypes, modules, ggufs, lc_notes,
                               results, failed, threads)
        report(a, qf, lc, ort, rows, notes, checks, time.time() - t0)
    finally:
        if tmp:
            tmp.cleanup()


if __name__ == "__main__":
    main()
