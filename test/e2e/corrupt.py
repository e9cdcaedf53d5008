"""corrupt.py IN OUT MODE [ARGS]: writes a damaged copy of the module IN.

  truncate FRACTION        the first FRACTION of the bytes
  flip-section NAME        one byte in the middle of section NAME flipped
  magic                    the magic replaced
  overlap NAME OTHER       section NAME's table entry pointing at OTHER's bytes
  past-end NAME            section NAME's size running past the end of the file
  manifest-shape ARG DIMS  the manifest giving argument ARG the shape DIMS ("4,-1")
The last three recompute every checksum, so that only the layout or the manifest is wrong.
"""
import json
import sys

sys.path.insert(0, __import__("os").path.dirname(__file__))
import qfmlib  # noqa: E402

src, dst, mode = sys.argv[1], sys.argv[2], sys.argv[3]
data = bytearray(open(src, "rb").read())
module = qfmlib.Module(src)
names = list(module.sections)
if mode == "truncate":
    data = data[: int(len(data) * float(sys.argv[4]))]
elif mode == "flip-section":
    off, length = module.sections[sys.argv[4]]
    data[off + length // 2] ^= 0xFF
    print(f"flipped byte {off + length // 2}")
elif mode == "magic":
    data[0:8] = b"NOTQFMOD"
elif mode == "overlap":
    off, length = module.sections[sys.argv[5]]
    data = qfmlib.set_entry(data, names.index(sys.argv[4]), offset=off, size=length)
elif mode == "past-end":
    off, _ = module.sections[sys.argv[4]]
    data = qfmlib.set_entry(data, names.index(sys.argv[4]), size=len(data) - off + 64)
elif mode == "manifest-shape":
    manifest = module.manifest
    for arg in manifest["entry"]["args"]:
        if arg["name"] == sys.argv[4]:
            arg["shape"] = [int(d) for d in sys.argv[5].split(",")]
    sections = [(n, module.section(n)) for n in names]
    sections[names.index("manifest")] = ("manifest", json.dumps(manifest).encode())
    data = qfmlib.build(sections)
else:
    sys.exit(__doc__)
open(dst, "wb").write(bytes(data))
