"""Prints how the quantized module's output compares with the float model's."""
import sys

import numpy as np

y = np.load(sys.argv[1]).astype(np.float64)
yq = np.load(sys.argv[2]).astype(np.float64)
err = np.linalg.norm(y - yq) / np.linalg.norm(y)
print(f"float output    y[0, :6] = {np.array2string(y.ravel()[:6], precision=4)}")
print(f"quantized output         {np.array2string(yq.ravel()[:6], precision=4)}")
print(f"relative error ||y - y_q|| / ||y|| = {err:.4f}; max |y - y_q| = {np.abs(y - yq).max():.4f}")
