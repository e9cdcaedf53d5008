"""copy_calib.py CALIBRATED.mlir TARGET.mlir OUT.mlir

qf-calibrate needs a model whose one input is byte tokens, so a decode-step export (with
KV-cache inputs) cannot be calibrated itself. This copies the qf.calib statistics of every
linear of CALIBRATED (the full-sequence export, after qf-calibrate) onto the linear of
TARGET whose weight constant has the same qf.name, with the xtx resource blobs, so that
qf-awq can run on TARGET. Works on the printed form of graph IR (one op per line).
Prints how many linears received statistics.
"""
import re
import sys

calibrated, target, out = sys.argv[1:4]
CONST = re.compile(r'^\s*(%\S+) = "tosa.const".*\{qf.name = "([^"]+)"\}', re.M)
RESHAPE = re.compile(r"^\s*(%\S+) = tosa.reshape (%[^,]+),", re.M)
MATMUL = re.compile(r"^(\s*%\S+ = tosa.matmul %[^,]+, (%[^,]+), %[^,]+, %[^ ]+)( \{.*\})? :", re.M)
CALIB = re.compile(r"qf.calib = \{[^{}]*xtx = dense_resource<([^>]+)>[^{}]*\}")


def weight_names(text):
    """The qf.name of the constant behind each SSA value (through one reshape)."""
    names = {m.group(1): m.group(2) for m in CONST.finditer(text)}
    for m in RESHAPE.finditer(text):
        if m.group(2) in names:
            names[m.group(1)] = names[m.group(2)]
    return names


text = open(calibrated).read()
names = weight_names(text)
stats = {}
for m in MATMUL.finditer(text):
    calib = CALIB.search(m.group(3) or "")
    if calib and m.group(2) in names:
        blob = re.search(r"^\s*(" + re.escape(calib.group(1)) + r': "0x[0-9A-Fa-f]*")', text, re.M)
        stats[names[m.group(2)]] = (calib.group(0), blob.group(1))

text = open(target).read()
names = weight_names(text)
blobs = []


def attach(m):
    name = names.get(m.group(2))
    if name not in stats or m.group(3):
        return m.group(0)
    blobs.append(stats[name][1])
    return m.group(1) + " {" + stats[name][0] + "} :"


text = MATMUL.sub(attach, text)
text = text.replace("    builtin: {\n", "    builtin: {\n" + "".join(f"      {b},\n" for b in blobs), 1)
open(out, "w").write(text)
print(f"copied the statistics of {len(blobs)} of {len(stats)} linears")
