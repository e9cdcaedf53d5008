#!/usr/bin/python3
"""Builds an .onnx file from ONNX textual syntax embedded in a lit test.

The model is the text of the lines starting with `// ONNX:` (or another
prefix given with --prefix), parsed with onnx.parser. Nodes without a name
are named n0, n1, ... in graph order so diagnostics can name them.

  onnx_text.py TEST OUT.onnx [--prefix ONNX] [--raw]
               [--external FILE] [--drop-external] [--truncate]

--raw            store initializers as raw_data (the parser writes typed fields)
--external FILE  move every initializer's bytes to FILE next to OUT.onnx
--drop-external  ... and then delete FILE (a model whose data is missing)
--truncate       write only the first half of the serialized model
"""

import argparse
import os
import sys

import numpy as np
import onnx
import onnx.parser
from onnx import numpy_helper


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("test")
    ap.add_argument("out")
    ap.add_argument("--prefix", default="ONNX")
    ap.add_argument("--raw", action="store_true")
    ap.add_argument("--external")
    ap.add_argument("--drop-external", action="store_true")
    ap.add_argument("--truncate", action="store_true")
    args = ap.parse_args()

    marker = "// " + args.prefix + ":"
    lines = []
    with open(args.test) as f:
        for line in f:
            line = line.strip()
            if line.startswith(marker):
                lines.append(line[len(marker):])
    if not lines:
        sys.exit("no '%s' lines in %s" % (marker, args.test))
    model = onnx.parser.parse_model("\n".join(lines))
    for i, node in enumerate(model.graph.node):
        if not node.name:
            node.name = "n%d" % i

    if args.raw or args.external:
        for init in model.graph.initializer:
            init.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(init),
                                                  init.name))
    if args.external:
        out_dir = os.path.dirname(os.path.abspath(args.out))
        path = os.path.join(out_dir, args.external)
        with open(path, "wb") as f:
            for init in model.graph.initializer:
                offset = f.tell()
                f.write(init.raw_data)
                init.ClearField("raw_data")
                init.data_location = onnx.TensorProto.EXTERNAL
                for key, value in (("location", args.external),
                                   ("offset", str(offset)),
                                   ("length", str(f.tell() - offset))):
                    entry = init.external_data.add()
                    entry.key = key
                    entry.value = value
        if args.drop_external:
            os.remove(path)

    data = model.SerializeToString()
    if args.truncate:
        data = data[: len(data) // 2]
    with open(args.out, "wb") as f:
        f.write(data)


if __name__ == "__main__":
    main()
