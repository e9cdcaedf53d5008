#!/usr/bin/python3
"""Runs ONNX's backend node tests through qforge and compares the outputs.

For every test directory (model.onnx plus test_data_set_*/input_*.pb and
output_*.pb), the test is *claimed* when qforge-import --list-ops names every
operator of the model and every graph input and output is a tensor of an
element type qforge handles. A claimed test is compiled with

  qforge-compile model.onnx -o t.qfm --method none --target cpu --quiet

(plus --shape NAME=DIMS, taken from the test data, for inputs whose shapes
the model leaves symbolic), run with qforge-run once per data set, and its
outputs compared with the reference: floats within rtol 1e-4 and atol 1e-5
(bfloat16 within one bfloat16 unit in the last place: ONNX 1.12's reference
truncates where qforge rounds to nearest), integers and booleans exactly.

Prints one line per test and, last,
  conformance: P passed, F failed, N not claimed (T total)
and exits non-zero when a claimed test fails.

  run_node_tests.py [--data DIR] [--bin DIR] [--jobs N] [--filter REGEX]
                    [--only-failures] [--keep DIR]
"""

import argparse
import concurrent.futures
import glob
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import onnx
from onnx import numpy_helper

DEFAULT_DATA = "/usr/share/libonnx-testdata/data/node"

# Element types of graph inputs and outputs that qforge imports, computes
# on and exchanges through qforge-run (unsigned integers, strings and
# complex numbers are not among them).
TP = onnx.TensorProto
SUPPORTED_TYPES = {TP.FLOAT, TP.FLOAT16, TP.BFLOAT16, TP.DOUBLE, TP.INT8,
                   TP.INT16, TP.INT32, TP.INT64, TP.BOOL}

RTOL, ATOL = 1e-4, 1e-5
# Tests whose reference outputs are themselves less accurate than RTOL, with
# the relative tolerance used for them instead and the reason.
LOOSE_REFERENCES = {
    r"test_(blackman|hamming|hann)window": (
        1e-3, "ONNX 1.12's window references are off by up to 1.5e-4 "
        "relative from the exact window (e.g. hann, N=10: 0.34556198 for "
        "0.5 - 0.5 cos(2 pi 8/10) = 0.34549150)"),
}
BF16_RTOL = 2.0 ** -7
TIMEOUT = 300


class Result:
    PASS, FAIL, UNCLAIMED = "PASS", "FAIL", "NOT CLAIMED"

    def __init__(self, name, status, detail=""):
        self.name, self.status, self.detail = name, status, detail

    def line(self):
        text = "%-11s %s" % (self.status, self.name)
        return text + (": " + self.detail if self.detail else "")


def all_op_types(graph, out):
    """Adds (domain, op_type) of every node, subgraphs included."""
    for node in graph.node:
        out.add((node.domain, node.op_type))
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                all_op_types(attr.g, out)
            for g in attr.graphs:
                all_op_types(g, out)
    return out


def type_problem(value_info):
    """Why a graph input/output is outside what qforge handles, or None."""
    t = value_info.type
    if not t.HasField("tensor_type"):
        return "'%s' is not a tensor" % value_info.name
    elem = t.tensor_type.elem_type
    if elem not in SUPPORTED_TYPES:
        return "'%s' has element type %s" % (
            value_info.name, TP.DataType.Name(elem))
    return None


# Operand positions qforge-import needs as constants (shapes, axes, sizes,
# slice bounds, repeats, ranges). Node tests often feed them from graph
# inputs; such inputs are specialised: frozen into the model as
# initializers holding the test data's values.
CONSTANT_OPERANDS = {
    "Reshape": [1], "Expand": [1], "Tile": [1], "Slice": [1, 2, 3, 4],
    "Split": [1], "Squeeze": [1], "Unsqueeze": [1], "ConstantOfShape": [0],
    "Range": [0, 1, 2], "Trilu": [1], "CumSum": [1],
    "ReduceSum": [1], "ReduceMean": [1], "ReduceMax": [1], "ReduceMin": [1],
    "ReduceProd": [1], "ReduceL1": [1], "ReduceL2": [1],
    "ReduceSumSquare": [1], "ReduceLogSum": [1], "ReduceLogSumExp": [1],
}


def inputs_to_freeze(graph, input_names):
    """Graph inputs whose values reach an operand in CONSTANT_OPERANDS."""
    needed = set()
    for node in graph.node:
        for i in CONSTANT_OPERANDS.get(node.op_type, []):
            if i < len(node.input) and node.input[i]:
                needed.add(node.input[i])
    # Backwards through the nodes that compute them.
    changed = True
    while changed:
        changed = False
        for node in graph.node:
            if any(o in needed for o in node.output):
                for i in node.input:
                    if i and i not in needed:
                        needed.add(i)
                        changed = True
    return [n for n in input_names if n in needed]


def is_static(value_info):
    t = value_info.type.tensor_type
    if not t.HasField("shape"):
        return False
    return all(d.HasField("dim_value") for d in t.shape.dim)


def run(cmd, cwd=None):
    try:
        p = subprocess.run(cmd, cwd=cwd, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        return 124, "timed out after %d s" % TIMEOUT
    text = (p.stderr or p.stdout).decode("utf-8", "replace").strip()
    return p.returncode, text


def first_line(text):
    lines = [l for l in text.splitlines() if l.strip()]
    return lines[0].strip() if lines else "(no message)"


def manifest_outputs(tools, qfm):
    """Output names from `qforge-run MODULE info`, in entry order."""
    p = subprocess.run([tools["qforge-run"], qfm, "info"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=TIMEOUT)
    names = []
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        m = re.match(r"\s*\d+\s+output\s+(\S+)\s", line)
        if m:
            names.append(m.group(1))
    return names


def load_npy(path, elem_type):
    a = np.load(path, allow_pickle=False)
    if elem_type == TP.BFLOAT16:
        bits = np.ascontiguousarray(a).view(np.uint16).astype(np.uint32)
        a = (bits << 16).view(np.float32)
    return a


def reference_array(proto, elem_type):
    a = numpy_helper.to_array(proto)
    if elem_type == TP.BFLOAT16:
        bits = np.ascontiguousarray(a).view(np.uint16).astype(np.uint32)
        a = (bits << 16).view(np.float32)
    return a


def compare(actual, expected, elem_type, rtol):
    """None when `actual` matches `expected`, else why not."""
    if actual.shape != expected.shape:
        return "shape %s, expected %s" % (actual.shape, expected.shape)
    if elem_type in (TP.FLOAT, TP.FLOAT16, TP.BFLOAT16, TP.DOUBLE):
        a = actual.astype(np.float64)
        e = expected.astype(np.float64)
        if elem_type == TP.BFLOAT16:
            rtol = max(rtol, BF16_RTOL)
        ok = np.isclose(a, e, rtol=rtol, atol=ATOL, equal_nan=True)
        if ok.all():
            return None
        bad = np.argwhere(~ok)
        i = tuple(bad[0])
        return "%d of %d elements differ, e.g. at %s: %r, expected %r" % (
            len(bad), a.size, list(i), a[i], e[i])
    a = actual.astype(np.int64) if actual.dtype != np.bool_ else actual
    e = expected.astype(np.int64) if expected.dtype != np.bool_ else expected
    if a.dtype != e.dtype:
        a, e = a.astype(np.int64), e.astype(np.int64)
    if np.array_equal(a, e):
        return None
    bad = np.argwhere(a != e)
    i = tuple(bad[0]) if bad.ndim == 2 and len(bad) else ()
    return "%d of %d elements differ, e.g. at %s: %r, expected %r" % (
        len(bad), a.size, list(i), a[i], e[i])


def fix_input(proto, elem_type, path):
    """Writes `proto` re-typed as `elem_type` when the test data stores it
    as another type of equal width (bfloat16 bits as UINT16)."""
    if proto.data_type == elem_type:
        return None
    if elem_type == TP.BFLOAT16 and proto.data_type == TP.UINT16:
        fixed = TP()
        fixed.CopyFrom(proto)
        bits = numpy_helper.to_array(proto).astype(np.uint16)
        fixed.ClearField("int32_data")
        fixed.raw_data = bits.tobytes()
        fixed.data_type = TP.BFLOAT16
        with open(path, "wb") as f:
            f.write(fixed.SerializeToString())
        return path
    return None


def run_test(test_dir, claimed, tools, work_root):
    name = os.path.basename(test_dir)
    model_path = os.path.join(test_dir, "model.onnx")
    try:
        model = onnx.load(model_path)
    except Exception as e:  # a model this onnx cannot read
        return Result(name, Result.UNCLAIMED, "model unreadable: %s" % e)

    ops = all_op_types(model.graph, set())
    foreign = sorted(op for dom, op in ops if dom not in ("", "ai.onnx"))
    missing = sorted(op for dom, op in ops
                     if dom in ("", "ai.onnx") and op not in claimed)
    if foreign or missing:
        return Result(name, Result.UNCLAIMED,
                      "operators " + ", ".join(foreign + missing))

    initializers = {t.name for t in model.graph.initializer}
    inputs = [v for v in model.graph.input if v.name not in initializers]
    outputs = list(model.graph.output)
    for v in inputs + outputs:
        problem = type_problem(v)
        if problem:
            return Result(name, Result.UNCLAIMED, "type: " + problem)

    data_sets = sorted(glob.glob(os.path.join(test_dir, "test_data_set_*")))
    if not data_sets:
        return Result(name, Result.UNCLAIMED, "no test data")

    rtol, notes = RTOL, []
    for pattern, (loose, _) in LOOSE_REFERENCES.items():
        if re.match(pattern, name):
            rtol = loose
            notes.append("rtol %g (imprecise reference)" % loose)

    work = tempfile.mkdtemp(prefix=name + ".", dir=work_root)
    compiled = {}  # tuple of --shape options -> (qfm, output names)
    try:
        for ds in data_sets:
            ds_name = os.path.basename(ds)
            in_files = sorted(glob.glob(os.path.join(ds, "input_*.pb")),
                              key=lambda p: int(re.findall(r"\d+", p)[-1]))
            out_files = sorted(glob.glob(os.path.join(ds, "output_*.pb")),
                               key=lambda p: int(re.findall(r"\d+", p)[-1]))
            if len(in_files) != len(inputs):
                return Result(name, Result.UNCLAIMED,
                              "%s gives %d of %d inputs (optional inputs)" %
                              (ds_name, len(in_files), len(inputs)))
            protos = [onnx.load_tensor(p) for p in in_files]
            for v, proto in zip(inputs, protos):
                t = v.type.tensor_type
                if t.HasField("shape") and is_static(v) and (
                        [d.dim_value for d in t.shape.dim] != list(proto.dims)):
                    return Result(name, Result.UNCLAIMED,
                                  "%s: input '%s' has shape %s, the model "
                                  "declares %s (inconsistent test)" % (
                                      ds_name, v.name, list(proto.dims),
                                      [d.dim_value for d in t.shape.dim]))

            # Freeze the inputs that must be constants; the model run is a
            # specialisation of the test's model to this data set.
            frozen = inputs_to_freeze(model.graph, [v.name for v in inputs])
            run_model, run_inputs = model_path, list(zip(inputs, protos,
                                                         in_files))
            if frozen:
                special = onnx.ModelProto()
                special.CopyFrom(model)
                kept = []
                del special.graph.input[:]
                for v, proto, path in run_inputs:
                    if v.name in frozen:
                        init = special.graph.initializer.add()
                        init.CopyFrom(proto)
                        init.name = v.name
                    else:
                        special.graph.input.add().CopyFrom(v)
                        kept.append((v, proto, path))
                run_inputs = kept
                run_model = os.path.join(work, "%s.onnx" % ds_name)
                onnx.save(special, run_model)

            # Specialise symbolic input shapes from this data set.
            shape_opts = []
            for v, proto, _ in run_inputs:
                if not is_static(v):
                    dims = "x".join(str(d) for d in proto.dims)
                    if not proto.dims:
                        return Result(name, Result.UNCLAIMED,
                                      "input '%s' is a scalar of unknown "
                                      "rank" % v.name)
                    shape_opts.append("--shape=%s=%s" % (v.name, dims))
            key = (run_model,) + tuple(shape_opts)
            if key not in compiled:
                qfm = os.path.join(work, "t%d.qfm" % len(compiled))
                rc, text = run([tools["qforge-compile"], run_model, "-o", qfm,
                                "--method", "none", "--target", "cpu",
                                "--quiet"] + shape_opts)
                if rc != 0:
                    return Result(name, Result.FAIL,
                                  "compile: " + first_line(text))
                compiled[key] = (qfm, manifest_outputs(tools, qfm))
            qfm, out_names = compiled[key]
            if len(out_names) != len(outputs):
                out_names = [v.name for v in outputs]

            cmd = [tools["qforge-run"], qfm, "--device", "cpu"]
            for i, (v, proto, path) in enumerate(run_inputs):
                fixed = fix_input(proto, v.type.tensor_type.elem_type,
                                  os.path.join(work, "%s.in%d.pb" %
                                               (ds_name, i)))
                cmd += ["--input", "%s=%s" % (v.name, fixed or path)]
            npys = []
            for i, out_name in enumerate(out_names):
                npy = os.path.join(work, "%s.out%d.npy" % (ds_name, i))
                npys.append(npy)
                cmd += ["--output", "%s=%s" % (out_name, npy)]
            rc, text = run(cmd)
            if rc != 0:
                return Result(name, Result.FAIL,
                              "%s: run: %s" % (ds_name, first_line(text)))

            for i, (v, npy) in enumerate(zip(outputs, npys)):
                if i >= len(out_files):
                    break
                elem = v.type.tensor_type.elem_type
                expected = reference_array(onnx.load_tensor(out_files[i]),
                                           elem)
                try:
                    actual = load_npy(npy, elem)
                except Exception as e:
                    return Result(name, Result.FAIL, "%s: output '%s': %s" %
                                  (ds_name, v.name, e))
                why = compare(actual, expected, elem, rtol)
                if why:
                    return Result(name, Result.FAIL, "%s: output '%s': %s" %
                                  (ds_name, v.name, why))
        if frozen:
            notes.append("inputs %s frozen from the test data" %
                         ", ".join(frozen))
        return Result(name, Result.PASS, "; ".join(notes))
    finally:
        shutil.rmtree(work, ignore_errors=True)


def find_tools(bin_dir):
    tools = {}
    for tool in ("qforge-import", "qforge-compile", "qforge-run"):
        path = (os.path.join(bin_dir, tool) if bin_dir
                else shutil.which(tool))
        if not path or not os.access(path, os.X_OK):
            sys.exit("run_node_tests.py: %s not found (use --bin DIR or put "
                     "it on PATH)" % tool)
        tools[tool] = path
    return tools


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=DEFAULT_DATA,
                    help="directory of node tests (default %(default)s)")
    ap.add_argument("--bin", help="directory of the qforge tools "
                    "(default: found on PATH)")
    ap.add_argument("--jobs", type=int, default=2,
                    help="tests run in parallel (default %(default)s)")
    ap.add_argument("--filter", help="only tests whose name matches REGEX")
    ap.add_argument("--only-failures", action="store_true",
                    help="print only the failing tests' lines")
    ap.add_argument("--keep", help="work in DIR and keep it")
    args = ap.parse_args()

    tools = find_tools(args.bin)
    listed = subprocess.run([tools["qforge-import"], "--list-ops"],
                            stdout=subprocess.PIPE, check=True)
    claimed = set(listed.stdout.decode().split())

    tests = sorted(d for d in glob.glob(os.path.join(args.data, "*"))
                   if os.path.isfile(os.path.join(d, "model.onnx")))
    if args.filter:
        tests = [t for t in tests
                 if re.search(args.filter, os.path.basename(t))]
    if not tests:
        sys.exit("run_node_tests.py: no tests in %s" % args.data)

    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
        work_root = args.keep
    else:
        work_root = tempfile.mkdtemp(prefix="qforge-node-tests.")
    start = time.time()
    try:
        with concurrent.futures.ThreadPoolExecutor(args.jobs) as pool:
            results = list(pool.map(
                lambda t: run_test(t, claimed, tools, work_root), tests))
    finally:
        if not args.keep:
            shutil.rmtree(work_root, ignore_errors=True)
    elapsed = time.time() - start

    counts = {Result.PASS: 0, Result.FAIL: 0, Result.UNCLAIMED: 0}
    for r in results:
        counts[r.status] += 1
        if not args.only_failures or r.status == Result.FAIL:
            print(r.line())
    print("time: %.1f s with %d jobs" % (elapsed, args.jobs))
    print("conformance: %d passed, %d failed, %d not claimed (%d total)" % (
        counts[Result.PASS], counts[Result.FAIL], counts[Result.UNCLAIMED],
        len(results)))
    sys.exit(1 if counts[Result.FAIL] else 0)


if __name__ == "__main__":
    main()
