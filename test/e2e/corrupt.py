"""corrupt.py IN OUT (truncate FRACTION | flip-section NAME | magic): writes a damaged copy."""
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
import qfmlib  # noqa: E402

src, dst, mode = sys.argv[1], sys.argv[2], sys.argv[3]
data = bytearray(open(src, "rb").read())
if mode == "truncate":
    data = data[: int(len(data) * float(sys.argv[4]))]
elif mode == "flip-section":
    off, length = qfmlib.Module(src).sections[sys.argv[4]]
    data[off + length // 2] ^= 0xFF
    print(f"flipped byte {off + length // 2}")
elif mode == "magic":
    data[0:8] = b"NOTQFMOD"
open(dst, "wb").write(bytes(data))
