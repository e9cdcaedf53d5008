"""make_bigram_lm.py OUT.mlir [--dim 16] [--seed 0]: a byte-level bigram language model as
graph IR: logits[1, T, 256] = embed[input_ids] · proj, with T dynamic and the weights as
dense_resource blobs."""
import argparse

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("out")
p.add_argument("--dim", type=int, default=16)
p.add_argument("--seed", type=int, default=0)
a = p.parse_args()
rng = np.random.default_rng(a.seed)
d = a.dim
embed = rng.standard_normal((1, 256, d)).astype(np.float32)
proj = (rng.standard_normal((d, 256)) / np.sqrt(d)).astype(np.float32)


def blob(x):
    return "0x04000000" + x.tobytes().hex().upper()


with open(a.out, "w") as f:
    f.write(f"""func.func @main(%ids: tensor<1x?xi64> {{qf.name = "input_ids"}}) -> (tensor<1x?x256xf32> {{qf.name = "logits"}}) {{
  %embed = "tosa.const"() {{qf.name = "embed", values = dense_resource<embed> : tensor<1x256x{d}xf32>}} : () -> tensor<1x256x{d}xf32>
  %proj = "tosa.const"() {{qf.name = "proj", values = dense_resource<proj> : tensor<{d}x256xf32>}} : () -> tensor<{d}x256xf32>
  %i = tosa.cast %ids : (tensor<1x?xi64>) -> tensor<1x?xi32>
  %e = tosa.gather %embed, %i : (tensor<1x256x{d}xf32>, tensor<1x?xi32>) -> tensor<1x?x{d}xf32>
  %s = tosa.const_shape {{values = dense<[1, {d}, 256]> : tensor<3xindex>}} : () -> !tosa.shape<3>
  %p3 = tosa.reshape %proj, %s : (tensor<{d}x256xf32>, !tosa.shape<3>) -> tensor<1x{d}x256xf32>
  %zp = "tosa.const"() {{values = dense<0.0> : tensor<1xf32>}} : () -> tensor<1xf32>
  %logits = tosa.matmul %e, %p3, %zp, %zp : (tensor<1x?x{d}xf32>, tensor<1x{d}x256xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<1x?x256xf32>
  return %logits : tensor<1x?x256xf32>
}}
{{-#
  dialect_resources: {{
    builtin: {{
      embed: "{blob(embed)}",
      proj: "{blob(proj)}"
    }}
  }}
#-}}
""")
