#!/usr/bin/env bash
# On a machine with an NVIDIA GPU (driver loaded, /dev/nvidia0): builds qforge, runs
# the CUDA tests, then the GPU benchmarks.
#
#   scripts/gpu-check.sh [--synthetic]
#
# Tests (lit): e2e/cuda-device.test (generated matmul kernels against an independent
# decode), e2e/cuda-models.test (the bundled llama and gpt2 with every op on the GPU:
# logits within 1e-3 relative and perplexity within 0.1 % of the CPU code of the same
# module, and within 2e-5 of the CPU emulation of the kernels' arithmetic; the decode
# exports generate the same greedy bytes; foreign exports against their references),
# e2e/cuda-runtime.test, e2e/cuda-whole-model.test, e2e/cuda-foreign.test and
# e2e/ptxas.test (stand-in driver, host code and ptxas checks, which also run without a
# GPU).
# Benchmarks: bench/bench_linear.py --device cuda (4096x4096 and 8192x8192 at M = 1 and
# 16, with cuBLAS FP16 and the float module as baselines and a device copy as the
# bandwidth probe, all in the same run) and bench/bench_lm.py --device cuda on the
# bundled model (float module as the baseline); --synthetic adds a 0.52 B-parameter
# synthetic llama (exported with python3-torch, several GiB of disk and memory).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
if [ ! -e /dev/nvidia0 ] && [ ! -e /dev/nvidiactl ]; then
  echo "gpu-check: no NVIDIA GPU on this machine (/dev/nvidia0 missing)" >&2
  exit 1
fi
start=$(date +%s)
bash "$root/scripts/build.sh" qforge-test-depends
echo "== CUDA tests =="
/usr/lib/llvm-22/bin/lit -sv "$root/build/test" \
  --filter 'cuda-device|cuda-models|cuda-runtime|cuda-whole-model|cuda-foreign|ptxas'
echo "== one linear layer on the GPU =="
/usr/bin/python3 "$root/bench/bench_linear.py" --device cuda \
  --shapes 4096x4096,8192x8192 --rows 1,16 --threads 1 --activations f32
echo "== language models on the GPU =="
models=(--model bundled)
if [ "${1:-}" = "--synthetic" ]; then
  models+=(--model synthetic:2048:10 --work "$root/build/gpu-check-lm")
fi
/usr/bin/python3 "$root/bench/bench_lm.py" --device cuda "${models[@]}" \
  --rounds 1 --iterations 3 --decode-iterations 20 \
  --qforge-variants float,rtn4-g128,rtn4-g32
echo "gpu-check: done in $(( $(date +%s) - start )) s"
