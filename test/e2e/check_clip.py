"""check_clip.py MODEL.onnx PLAIN.qfm CLIP.qfm BITS GROUP: RTN with and without --clip.

Decodes the weight of both one-layer modules (qfmlib, independent of the compiler) and
checks what the clipping search promises: every group's scale is at most the plain
RTN scale (the search only shrinks the range), some are smaller, and the weight's mean
squared error is lower than plain RTN's.
"""
import sys

import numpy as np
import onnx
from onnx import numpy_helper

sys.path.insert(0, __import__("os").path.dirname(__file__))
import qfmlib  # noqa: E402

onnx_path, plain_path, clip_path, bits, group = sys.argv[1:6]
bits, group = int(bits), int(group)
weight = next(numpy_helper.to_array(t) for t in onnx.load(onnx_path).graph.initializer
              if len(t.dims) == 2).astype(np.float64).T  # [N, K]


def decode(path):
    w = qfmlib.Module(path).weights_by_name()
    codes = next(v for k, v in w.items() if k.endswith(".codes"))
    scales = next(v for k, v in w.items() if k.endswith(".scales"))
    zps = next((v for k, v in w.items() if k.endswith(".zero_points")), None)
    return qfmlib.dequantize(codes, scales, zps, bits, group, weight.shape[1])


plain, plain_s = decode(plain_path)
clip, clip_s = decode(clip_path)
mse_plain = np.mean((weight - plain) ** 2)
mse_clip = np.mean((weight - clip) ** 2)
shrunk = np.mean(clip_s < plain_s * (1 - 1e-6))
ok = bool((clip_s <= plain_s * (1 + 1e-6)).all()) and shrunk > 0 and mse_clip < mse_plain
print(f"weight MSE: plain {mse_plain:.4e}, clipped {mse_clip:.4e} "
      f"({100 * (1 - mse_clip / mse_plain):.1f}% lower); scales shrunk: {100 * shrunk:.0f}%")
print("PASS" if ok else "FAIL")
sys.exit(0 if ok else 1)
