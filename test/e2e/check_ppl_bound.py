"""check_ppl_bound.py REF.json BYTES MARGIN OUT... [--below A B]

Each OUT holds the line `qforge-run MODULE perplexity` printed for a quantized module on
the first BYTES bytes of the validation text; its nats/byte must not exceed the float
model's (torch, from REF.json) by more than MARGIN (relative). With --below A B, the
module scored in file A must also be within MARGIN and score lower than the one in file
B (the baseline, which is only printed).
"""
import json
import re
import sys

args = sys.argv[1:]
below = None
if "--below" in args:
    i = args.index("--below")
    below = args[i + 1:i + 3]
    args = args[:i]
ref_path, nbytes, margin, outs = args[0], int(args[1]), float(args[2]), args[3:]
ref = [r for r in json.load(open(ref_path))["runs"] if r["bytes"] == nbytes][0]["nats_per_byte"]


def nats(path):
    return float(re.search(r"nats/byte ([0-9.]+)", open(path).read()).group(1))


ok = True
for out in outs + (below or []):
    n = nats(out)
    rel = n / ref - 1.0
    print(f"{out.rsplit('/', 1)[-1]}: {n:.6f} nats/byte, {rel * 100:+.3f}% vs float {ref:.6f}")
    ok &= (out not in outs and out != (below or [None])[0]) or rel <= margin
if below:
    ok &= nats(below[0]) < nats(below[1])
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
