"""Runs every GoogleTest binary in a folder and prints the combined counts."""
import os
import re
import subprocess
import sys

folder = sys.argv[1]
passed = failed = 0
for name in sorted(os.listdir(folder)):
    exe = os.path.join(folder, name)
    if not os.access(exe, os.X_OK) or os.path.isdir(exe):
        continue
    proc = subprocess.run([exe, "--gtest_brief=1"], capture_output=True, text=True)
    out = proc.stdout + proc.stderr
    ran = re.search(r"\[==========\] (\d+) tests? from", out)
    good = re.search(r"\[  PASSED  \] (\d+) tests?", out)
    n_ran = int(ran.group(1)) if ran else 0
    n_good = int(good.group(1)) if good else 0
    # A binary that failed without a summary (a crash) counts as one failure.
    n_bad = max(n_ran - n_good, 0 if proc.returncode == 0 else 1)
    passed += n_ran - n_bad
    failed += n_bad
    print(f"{name}: {n_ran - n_bad} passed, {n_bad} failed")
    if proc.returncode != 0:
        print(out)
print(f"unit tests: {passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
