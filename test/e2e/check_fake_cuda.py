#!/usr/bin/env python3
"""Reads the counters of two runs with the stand-in CUDA driver (test/tools/fake-cuda.cpp),
a short and a long generation, and checks the runtime's use of the driver: one stream,
few driver allocations per extra step (the session's memory pool), few bytes copied per
extra step (the KV cache stays on the device: only ids, mask, positions in and logits
out), everything freed."""
import argparse
import sys


def read(path):
    counters = {}
    with open(path) as f:
        for line in f:
            key, value = line.split()
            counters[key] = int(value)
    return counters


def main():
    p = argparse.ArgumentParser()
    p.add_argument("short")
    p.add_argument("long")
    p.add_argument("--extra-steps", type=int, required=True)
    p.add_argument("--max-per-step", type=float, default=1.0,
                   help="driver allocations per extra step, at most")
    p.add_argument("--max-copy-per-step", type=float, default=8192,
                   help="bytes copied to and from the device per extra step, at most")
    a = p.parse_args()
    short, long = read(a.short), read(a.long)
    failed = False
    for name, c in (("short", short), ("long", long)):
        if c["streams"] != 1:
            print(f"FAIL: the {name} run created {c['streams']} streams, expected 1")
            failed = True
        if c["live_blocks"] != 0 or c["allocations"] != c["frees"]:
            print(f"FAIL: the {name} run left {c['live_blocks']} blocks allocated "
                  f"({c['allocations']} allocations, {c['frees']} frees)")
            failed = True
    if not long["launches"] > short["launches"] > 0:
        print(f"FAIL: launches {short['launches']} then {long['launches']}")
        failed = True
    per_step = (long["allocations"] - short["allocations"]) / a.extra_steps
    if per_step > a.max_per_step:
        print(f"FAIL: {per_step:.2f} driver allocations per extra step "
              f"({short['allocations']} then {long['allocations']}), "
              f"expected at most {a.max_per_step}")
        failed = True
    copied = {}
    for key in ("htod_bytes", "dtoh_bytes"):
        copied[key] = (long[key] - short[key]) / a.extra_steps
        if copied[key] > a.max_copy_per_step:
            print(f"FAIL: {copied[key]:.0f} {key} per extra step "
                  f"({short[key]} then {long[key]}), expected at most "
                  f"{a.max_copy_per_step:.0f}")
            failed = True
    if failed:
        sys.exit(1)
    print(f"OK: 1 stream, {per_step:.2f} driver allocations per extra step, "
          f"{copied['htod_bytes']:.0f} bytes in and {copied['dtoh_bytes']:.0f} out per "
          "extra step, nothing left allocated")


if __name__ == "__main__":
    main()
