"""compare_output_error.py A.mlir B.mlir: every qf.output_error in A (layer by layer, in
order) must be below the one in B. Prints both and PASS or FAIL."""
import re
import sys


def errors(path):
    with open(path) as fh:
        return [float(x) for x in re.findall(r"qf\.output_error = ([0-9.eE+-]+)", fh.read())]


a, b = errors(sys.argv[1]), errors(sys.argv[2])
print("A:", " ".join(f"{x:.4f}" for x in a))
print("B:", " ".join(f"{x:.4f}" for x in b))
ok = bool(a) and len(a) == len(b) and all(x < y for x, y in zip(a, b))
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
