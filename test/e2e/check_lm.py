"""check_lm.py perplexity|generate ...: recomputes what `qforge-run perplexity` and
`qforge-run generate` print, from logits of the module obtained with plain `qforge-run`
calls, and compares.

  check_lm.py perplexity QFM TEXT WINDOW PRINTED_LINE_FILE [BUCKET]
  check_lm.py generate QFM PROMPT COUNT PRINTED_TEXT_FILE
  check_lm.py eval QFM TASK.jsonl LIMIT WINDOW PRINTED_LINE_FILE

With BUCKET, the printed loss per bucket of positions (--by-position) is checked too. eval
recomputes lm-evaluation-harness's acc and acc_norm (the choice of highest log-likelihood,
in total and per byte) over the first LIMIT items.
"""
import json
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
    at = np.zeros(window)
    at_count = np.zeros(window)
    for begin in range(0, len(tokens), window):
        chunk = tokens[begin:begin + window]
        if len(chunk) < 2:
            continue
        l = logits(qfm, chunk)
        m = l.max(axis=1, keepdims=True)
        lse = (m[:, 0] + np.log(np.exp(l - m).sum(axis=1)))
        for j in range(len(chunk) - 1):
            nll += lse[j] - l[j, chunk[j + 1]]
            at[j] += lse[j] - l[j, chunk[j + 1]]
            at_count[j] += 1
            count += 1
    expected = nll / count
    got = float(printed[printed.index("nats/byte") + 1])
    rel = abs(got - expected) / expected
    print(f"nats/byte printed {got:.6f}, recomputed {expected:.6f}, relative difference {rel:.1e}; "
          f"predictions {count}")
    ok = rel < 1e-5 and int(printed[printed.index("predictions") + 1]) == count
    if len(sys.argv) > 6:
        bucket = int(sys.argv[6])
        lines = [l.split() for l in open(sys.argv[5]) if l.startswith("positions")]
        want = [(b, at[b:b + bucket].sum() / at_count[b:b + bucket].sum())
                for b in range(0, window - 1, bucket) if at_count[b:b + bucket].sum()]
        ok &= len(lines) == len(want)
        for line, (b, v) in zip(lines, want):
            ok &= line[1] == f"{b}-{min(b + bucket, window)}" and abs(float(line[3]) - v) < 1e-5 * v
        print(f"{len(lines)} position buckets printed, {len(want)} recomputed")
elif mode == "eval":
    task, limit, window = sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
    printed = open(sys.argv[6]).read().split()
    items = [json.loads(l) for l in open(task, encoding="utf-8") if l.strip()][:limit]
    right = right_norm = 0
    for item in items:
        context = list(item["context"].encode())
        scores = []
        for choice in item["choices"]:
            cont = list(choice.encode())
            keep = min(len(context), window - len(cont))
            tokens = context[len(context) - keep:] + cont
            l = logits(qfm, tokens)
            ll = 0.0
            for i, t in enumerate(cont):
                row = l[keep + i - 1]
                m = row.max()
                ll += row[t] - (m + np.log(np.exp(row - m).sum()))
            scores.append((ll, ll / len(cont)))
        right += int(np.argmax([a for a, _ in scores])) == item["gold"]
        right_norm += int(np.argmax([b for _, b in scores])) == item["gold"]
    acc, acc_norm = right / len(items), right_norm / len(items)
    got = float(printed[printed.index("acc") + 1]), float(printed[printed.index("acc_norm") + 1])
    print(f"acc printed {got[0]:.4f}, recomputed {acc:.4f}; acc_norm printed {got[1]:.4f}, "
          f"recomputed {acc_norm:.4f}; items {len(items)}")
    ok = (abs(got[0] - acc) < 1e-4 and abs(got[1] - acc_norm) < 1e-4
          and int(printed[printed.index("items") + 1]) == len(items))
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
