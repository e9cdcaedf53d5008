"""replay_fuzz.py KIND DIR BIN_DIR [MODULE]: runs qforge's tools on each input of
fuzz/regressions/KIND/ (inputs a fuzz target once crashed on) and checks that each is
refused cleanly: exit status 1, one line on stderr that says "error:", no output file.

  import-onnx  qforge-import FILE -o OUT
  qfm          qforge-run FILE info
  tensor       qforge-run MODULE run --input FILE --output OUT, the file being the input
               without its first byte (even: .npy, odd: .pb), as the fuzz target reads it
Prints one line per input and exits 1 if any is not refused cleanly; a missing DIR
holds no inputs.
"""
import os
import subprocess
import sys
import tempfile


def main():
    kind, inputs, bin_dir = sys.argv[1:4]
    module = sys.argv[4] if len(sys.argv) > 4 else None
    failures = 0
    tmp = tempfile.mkdtemp()
    out = os.path.join(tmp, "out")
    # Git keeps no empty directory: a target without regressions has none.
    names = sorted(os.listdir(inputs)) if os.path.isdir(inputs) else []
    print("%d inputs in %s" % (len(names), os.path.basename(inputs)))
    for name in names:
        path = os.path.join(inputs, name)
        if kind == "import-onnx":
            cmd = [os.path.join(bin_dir, "qforge-import"), path, "-o", out]
        elif kind == "qfm":
            cmd = [os.path.join(bin_dir, "qforge-run"), path, "info"]
        else:
            data = open(path, "rb").read()
            tensor = os.path.join(tmp, name + (".npy" if data[0] % 2 == 0 else ".pb"))
            with open(tensor, "wb") as f:
                f.write(data[1:])
            out = os.path.join(tmp, "out.npy")
            cmd = [os.path.join(bin_dir, "qforge-run"), module, "run", "--input", tensor,
                   "--output", out]
        r = subprocess.run(cmd, capture_output=True, text=True, errors="replace")
        lines = r.stderr.strip().splitlines()
        ok = r.returncode == 1 and len(lines) == 1 and "error:" in lines[0] and \
            not os.path.exists(out)
        print("%s %s: exit %d: %s" % ("ok" if ok else "FAIL", name, r.returncode,
                                      " | ".join(lines)[:1000]))
        failures += not ok
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
