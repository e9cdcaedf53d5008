"""check_ppl.py REF.json BYTES OUTPUT TOL

OUTPUT holds the line `qforge-run MODULE perplexity` printed; REF.json is a model's
ref_perplexity.json (written by models/export_lm.py from torch). The run over the first
BYTES bytes must report the same number of predictions and nats/byte within TOL relative.
"""
import json
import re
import sys

ref_path, nbytes, out_path, tol = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
with open(ref_path) as fh:
    runs = [r for r in json.load(fh)["runs"] if r["bytes"] == nbytes]
if not runs:
    sys.exit(f"FAIL: {ref_path} has no run over {nbytes} bytes")
ref = runs[0]
with open(out_path) as fh:
    text = fh.read()
m = re.search(r"nats/byte ([0-9.]+) .*predictions ([0-9]+)", text)
if not m:
    sys.exit(f"FAIL: no perplexity line in {out_path}: {text!r}")
nats, predictions = float(m.group(1)), int(m.group(2))
rel = abs(nats - ref["nats_per_byte"]) / ref["nats_per_byte"]
print(f"qforge {nats:.6f} nats/byte, torch {ref['nats_per_byte']:.6f}; "
      f"relative difference {rel:.2e} (limit {tol:g}); predictions {predictions} "
      f"(torch {ref['predictions']})")
ok = rel <= tol and predictions == ref["predictions"]
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
