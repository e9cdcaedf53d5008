func.func @main(%x: tensor<1x3xf32> {qf.name = "x"})
    -> (tensor<1x3xf32> {qf.name = "a"}, tensor<1x3xf32> {qf.name = "b"}) {
  %y = tosa.add %x, %x : (tensor<1x3xf32>, tensor<1x3xf32>) -> tensor<1x3xf32>
  return %y, %y : tensor<1x3xf32>, tensor<1x3xf32>
}
