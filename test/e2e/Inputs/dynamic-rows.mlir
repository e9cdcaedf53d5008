// A linear layer x[1, T, 8] · W[8, 4] with the sequence length T dynamic.
func.func @main(%x: tensor<1x?x8xf32> {qf.name = "x"}) -> (tensor<1x?x4xf32> {qf.name = "y"}) {
  %w = "tosa.const"() {qf.name = "fc.weight", values = dense<[
    [0.50, -0.25, 0.75, 0.10], [-0.60, 0.30, 0.20, -0.90], [0.05, 0.80, -0.40, 0.35],
    [0.90, -0.70, 0.15, 0.60], [-0.20, 0.45, -0.85, 0.25], [0.70, 0.10, 0.55, -0.30],
    [-0.45, -0.95, 0.65, 0.40], [0.30, 0.60, -0.10, -0.75]]> : tensor<8x4xf32>} : () -> tensor<8x4xf32>
  %s = tosa.const_shape {values = dense<[1, 8, 4]> : tensor<3xindex>} : () -> !tosa.shape<3>
  %w3 = tosa.reshape %w, %s : (tensor<8x4xf32>, !tosa.shape<3>) -> tensor<1x8x4xf32>
  %zp = "tosa.const"() {values = dense<0.0> : tensor<1xf32>} : () -> tensor<1xf32>
  %y = tosa.matmul %x, %w3, %zp, %zp : (tensor<1x?x8xf32>, tensor<1x8x4xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<1x?x4xf32>
  return %y : tensor<1x?x4xf32>
}
