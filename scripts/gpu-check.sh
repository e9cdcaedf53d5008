#!/usr/bin/env bash
# On a machine with an NVIDIA GPU (driver loaded, /dev/nvidia0): builds qforge, runs
# the CUDA tests, then the GPU benchmark of one linear layer.
#
#   scripts/gpu-check.sh
#
# Tests (lit): e2e/cuda-device.test (generated matmul kernels against an independent
# decode), e2e/cuda-models.test (the bundled llama and gpt2 with every op on the GPU:
# logits within 1e-3 relative and perplexity within 0.1 % of the CPU code of the same
# module; the decode exports generate the same greedy bytes), e2e/cuda-whole-model.test
# and e2e/ptxas.test (host code and ptxas checks, which also run without a GPU).
# Benchmark: bench/bench_linear.py --device cuda, the float module as the baseline.
#
# Not here yet: a cuBLAS FP16 baseline and bench/bench_lm.py on the GPU.
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
  --filter 'cuda-device|cuda-models|cuda-whole-model|ptxas'
echo "== one linear layer on the GPU =="
/usr/bin/python3 "$root/bench/bench_linear.py" --device cuda \
  --shapes 4096x4096,8192x8192 --rows 1,16 --threads 1 --activations f32
echo "gpu-check: done in $(( $(date +%s) - start )) s"
