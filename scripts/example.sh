#!/usr/bin/env bash
# The main job on the bundled example: make the one-layer model, compile it with 4-bit RTN
# for the CPU, run it, and compare with the float model.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bash "$root/scripts/build.sh" qforge-compile qforge-run qforge-import
bin="$root/build/bin"
work="$root/build/example"
mkdir -p "$work"
/usr/bin/python3 "$root/models/linear/make_linear.py" "$work/linear.onnx" --bias --ref-dir "$work"
"$bin/qforge-compile" "$work/linear.onnx" -o "$work/linear.qfm" \
  --method rtn --bits 4 --group-size 32 --target cpu
"$bin/qforge-run" "$work/linear.qfm" --input x="$work/x.npy" --output "$work/y_q.npy"
/usr/bin/python3 "$root/models/linear/compare.py" "$work/y.npy" "$work/y_q.npy"
