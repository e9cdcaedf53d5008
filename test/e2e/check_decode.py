"""check_decode.py REF_DIR ONNX OUT_PREFIX [--no-shape]

One decode step of a bundled language model: REF_DIR holds one .npy per input of the decode
export (input_ids, position, past_key_<i>, past_value_<i>) and per output (logits,
present_key_<i>, present_value_<i>), written by models/export_lm.py. Compiles ONNX in float
(with --shape for every input, taken from the reference arrays, unless --no-shape), runs
it with qforge-run on the reference inputs and compares every output with its reference:
max |got - ref| / max |ref| <= 1e-4. Prints one line per output and PASS or FAIL last.
"""
import os
import subprocess
import sys

import numpy as np
import onnx

ref_dir, onnx_path, prefix = sys.argv[1:4]
specialise = "--no-shape" not in sys.argv[4:]
graph = onnx.load(onnx_path, load_external_data=False).graph
inits = {t.name for t in graph.initializer}
inputs = [v.name for v in graph.input if v.name not in inits]
outputs = [v.name for v in graph.output]

module = prefix + ".qfm"
cmd = ["qforge-compile", onnx_path, "-o", module, "--method", "none", "--quiet"]
run = ["qforge-run", module]
for name in inputs:
    path = os.path.join(ref_dir, name + ".npy")
    if specialise:
        cmd += ["--shape", name + "=" + "x".join(str(d) for d in np.load(path).shape)]
    run += ["--input", f"{name}={path}"]
for name in outputs:
    run += ["--output", f"{name}={prefix}.{name}.npy"]
for c in (cmd, run):
    proc = subprocess.run(c, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.exit(f"FAIL: {' '.join(c[:2])} exited {proc.returncode}: {proc.stderr.strip()}")

ok = True
for name in outputs:
    ref = np.load(os.path.join(ref_dir, name + ".npy")).astype(np.float64)
    got = np.load(f"{prefix}.{name}.npy").astype(np.float64)
    if got.shape != ref.shape:
        print(f"{name}: shape {got.shape}, expected {ref.shape}")
        ok = False
        continue
    rel = np.abs(got - ref).max() / max(np.abs(ref).max(), 1e-30)
    ok &= bool(rel <= 1e-4)
    print(f"{name}: max relative difference {rel:.3e}")
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
