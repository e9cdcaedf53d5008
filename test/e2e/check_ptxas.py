#!/usr/bin/env python3
"""Assembles a PTX file with ptxas and checks every kernel: no stack frame, no spills.

usage: check_ptxas.py PTXAS FILE.ptx ARCH [--min-kernels N]

Prints the number of kernels and the distribution of register counts; exits 1 when
ptxas fails, when a kernel spills or uses a stack frame, or when fewer than N kernels
(.entry) are in the file.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("ptxas")
    parser.add_argument("ptx")
    parser.add_argument("arch")
    parser.add_argument("--min-kernels", type=int, default=1)
    args = parser.parse_args()
    ptxas, ptx, arch, min_kernels = args.ptxas, args.ptx, args.arch, args.min_kernels
    entries = len(re.findall(r"^\.visible \.entry |^\.entry ",
                             open(ptx).read(), re.M))
    with tempfile.TemporaryDirectory() as tmp:
        run = subprocess.run([ptxas, f"-arch={arch}", "-v", ptx, "-o",
                              os.path.join(tmp, "k.cubin")],
                             capture_output=True, text=True)
    log = run.stdout + run.stderr
    if run.returncode != 0:
        print(log[-4000:])
        print(f"FAIL: ptxas exited {run.returncode}")
        return 1
    compiled = re.findall(r"Compiling entry function '([^']+)'", log)
    frames = re.findall(r"(\d+) bytes stack frame, (\d+) bytes spill stores, "
                        r"(\d+) bytes spill loads", log)
    registers = [int(r) for r in re.findall(r"Used (\d+) registers", log)]
    bad = [(name, f) for name, f in zip(compiled, frames) if f != ("0", "0", "0")]
    print(f"{arch}: {entries} kernels in the PTX, {len(compiled)} assembled, "
          f"registers {min(registers, default=0)}-{max(registers, default=0)}")
    if bad:
        for name, f in bad[:10]:
            print(f"FAIL: {name}: {f[0]} bytes stack frame, {f[1]}/{f[2]} bytes "
                  "spill stores/loads")
        return 1
    if len(compiled) != entries or len(frames) != entries or entries < min_kernels:
        print(f"FAIL: {entries} kernels (at least {min_kernels} expected), "
              f"{len(compiled)} assembled, {len(frames)} with frame figures")
        return 1
    print(f"OK: {entries} kernels, no stack frame, no spills")
    return 0


if __name__ == "__main__":
    sys.exit(main())
