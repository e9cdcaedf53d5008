"""compare_ppl.py A.txt B.txt TOL

A and B hold the line `qforge-run MODULE perplexity` printed (for example on the CPU and
on the GPU). Both must score the same number of predictions, with nats/byte within TOL
relative.
"""
import re
import sys


def read(path):
    text = open(path).read()
    m = re.search(r"nats/byte ([0-9.]+) .*predictions ([0-9]+)", text)
    if not m:
        sys.exit(f"FAIL: no perplexity line in {path}: {text!r}")
    return float(m.group(1)), int(m.group(2))


(a, na), (b, nb) = read(sys.argv[1]), read(sys.argv[2])
tol = float(sys.argv[3])
rel = abs(a - b) / a
print(f"{a:.6f} against {b:.6f} nats/byte: relative difference {rel:.2e} (limit {tol:g}); "
      f"predictions {na} and {nb}")
ok = rel <= tol and na == nb
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
