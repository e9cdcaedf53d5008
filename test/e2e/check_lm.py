"""check_lm.py perplexity|generate ...: recomputes what `qforge-run perplexity` and
`qforge-run generate` print, from logits of the module obtained with plain `qforge-run`
calls, and compares.

  check_lm.py perplexity QFM TEXT WINDOW PRINTED_LINE_FILE
  check_lm.py generate QFM PROMPT COUNT PRINTED_TEXT_FILE
"""
import os
import subprocess
import sys
import tempfile

import numpy as np


def logits(qfm, tokens):
    with tempfile.TemporaryDirectory() as d:
        np.save(os.path.join(d, "ids.npy"), np.array([tokens], dtype=np.int64))
        subprocess.run(["qforge-run", qfm, "--input", "input_ids=" + os.path.join(d, "ids.npy"),
                        "--output", "logits=" + os.path.join(d, "l.npy")], check=True)
        return np.load(os.path.join(d, "l.npy"))[0].astype(np.float64)


mode, qfm = sys.argv[1], sys.argv[2]
if mode == "perplexity":
    tokens = list(open(sys.argv[3], "rb").read())
    window = int(sys.argv[4])
    printed = open(sys.argv[5]).read().split()
    nll, count = 0.0, 0
    for begin in range(0, len(tokens), window):
        chunk = tokens[begin:begin + window]
        if len(chunk) < 2:
            continue
        l = logits(qfm, chunk)
        m = l.max(axis=1, keepdims=True)
        lse = (m[:, 0] + np.log(np.exp(l - m).sum(axis=1)))
        for j in range(len(chunk) - 1):
            nll += lse[j] - l[j, chunk[j + 1]]
            count += 1
    expected = nll / count
    got = float(printed[printed.index("nats/byte") + 1])
    rel = abs(got - expected) / expected
    print(f"nats/byte printed {got:.6f}, recomputed {expected:.6f}, relative difference {rel:.1e}; "
          f"predictions {count}")
    ok = rel < 1e-5 and int(printed[printed.index("predictions") + 1]) == count
else:
    tokens = list(sys.argv[3].encode())
    count = int(sys.argv[4])
    for _ in range(count):
        tokens.append(int(np.argmax(logits(qfm, tokens)[-1])))
    expected = bytes(tokens)
    got = open(sys.argv[5], "rb").read().rstrip(b"\n")
    print(f"greedy continuation matches: {got == expected}")
    ok = got == expected
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
