#!/usr/bin/env bash
# The main job on the bundled model: compile the byte-level LLaMA-architecture model
# (models/llama, its decoder-with-past export: one module for whole windows and for
# generation with a KV cache) with 4-bit RTN (group 32) for the CPU, score the first 4096
# bytes of the held-out validation text, compare with torch's float figure on the same
# windows, and continue a prompt (sampled).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/build.sh" qforge-compile qforge-run qforge-import
bin="$root/build/bin"
work="$root/build/example"
mkdir -p "$work"
"$bin/qforge-compile" "$root/models/llama/llama-decode.onnx" -o "$work/llama-rtn4.qfm" \
  --method rtn --bits 4 --group-size 32 --target cpu
head -c 4096 "$root/models/data/val.txt" > "$work/val-4k.txt"
echo "== perplexity, 4-bit module (first 4096 bytes of models/data/val.txt, 256-byte windows)"
"$bin/qforge-run" "$work/llama-rtn4.qfm" perplexity --text "$work/val-4k.txt" --window 256
/usr/bin/python3 - "$root/models/llama/ref_perplexity.json" <<'PY'
import json, sys
run = [r for r in json.load(open(sys.argv[1]))["runs"] if r["bytes"] == 4096][0]
print(f"   float model in torch, same windows: nats/byte {run['nats_per_byte']:.6f}  "
      f"perplexity {run['perplexity']:.4f}")
PY
echo "== generate (sampled: temperature 0.7, top-k 40, top-p 0.95, repetition penalty 1.1; KV cache)"
"$bin/qforge-run" "$work/llama-rtn4.qfm" generate --prompt "It is a truth universally acknowledged, " \
  --max-tokens 200 --temperature 0.7 --top-k 40 --top-p 0.95 --repeat-penalty 1.1 --seed 1
