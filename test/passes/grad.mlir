// RUN: not qforge-opt %s --split-input-file --qf-grad=loss=sum 2>/dev/null | FileCheck %s
// RUN: not qforge-opt %s --split-input-file --qf-grad=loss=sum 2>&1 >/dev/null | FileCheck %s --check-prefix=ERR
// RUN: not qforge-opt %s --split-input-file --qf-grad 2>&1 | FileCheck %s --check-prefix=CE
// RUN: not qforge-opt %s --split-input-file --qf-grad=loss=mse 2>&1 | FileCheck %s --check-prefix=LOSS

// The structure of a gradient function: the forward ops cloned, the loss, and for the
// one weight (K = 2, N = 3) d loss / d W = Aᵀ · g through the reshape to [1, K, N], with
// the constant's own shape. The numerics are checked by test/e2e/grad-rules.test (every
// rule against central differences) and test/e2e/grad.test (the bundled models against
// torch). Inactive values get no adjoint: nothing is emitted for %bias.

// CHECK-LABEL: func.func @main(
// CHECK-LABEL: func.func @main_grad(%{{.+}}: tensor<1x4x2xf32> {qf.name = "x"}) -> (tensor<1xf32> {qf.name = "loss"}, tensor<2x3xf32> {qf.name = "grad.w"})
// CHECK:         %[[Y:.+]] = tosa.matmul
// CHECK:         %[[OUT:.+]] = tosa.add %[[Y]]
// CHECK:         %[[XT:.+]] = tosa.transpose %arg0 {perms = array<i32: 0, 2, 1>} : (tensor<1x4x2xf32>) -> tensor<1x2x4xf32>
// CHECK:         %[[G:.+]] = tosa.matmul %[[XT]], %{{.+}} : (tensor<1x2x4xf32>, tensor<1x4x3xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<1x2x3xf32>
// CHECK:         %[[DW:.+]] = tosa.reshape %[[G]], %{{.+}} : (tensor<1x2x3xf32>, !tosa.shape<2>) -> tensor<2x3xf32>
// CHECK-NOT:     tosa.reduce_sum {{.*}}tensor<1x1x3xf32>
// CHECK:         return %{{.+}}, %[[DW]] : tensor<1xf32>, tensor<2x3xf32>
// CE: error: qf-grad: the cross-entropy needs tokens [1, T] (argument 0, T >= 2) and logits [1, T, V] (result 0)
// LOSS: error: qf-grad: unknown loss 'mse' (cross-entropy or sum)
func.func @main(%x: tensor<1x4x2xf32> {qf.name = "x"}) -> tensor<1x4x3xf32> {
  %w = "tosa.const"() {values = dense<[[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]]> : tensor<2x3xf32>, qf.name = "w"} : () -> tensor<2x3xf32>
  %s = tosa.const_shape {values = dense<[1, 2, 3]> : tensor<3xindex>} : () -> !tosa.shape<3>
  %w3 = tosa.reshape %w, %s : (tensor<2x3xf32>, !tosa.shape<3>) -> tensor<1x2x3xf32>
  %zp = "tosa.const"() {values = dense<0.0> : tensor<1xf32>} : () -> tensor<1xf32>
  %y = tosa.matmul %x, %w3, %zp, %zp : (tensor<1x4x2xf32>, tensor<1x2x3xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<1x4x3xf32>
  %bias = "tosa.const"() {values = dense<[[[1.0, 2.0, 3.0]]]> : tensor<1x1x3xf32>} : () -> tensor<1x1x3xf32>
  %out = tosa.add %y, %bias : (tensor<1x4x3xf32>, tensor<1x1x3xf32>) -> tensor<1x4x3xf32>
  return %out : tensor<1x4x3xf32>
}

// -----

// ERR: error: qf-grad: @main has inputs of dynamic shape; import the model with static shapes (qforge-import --shape input_ids=1xT)
func.func @main(%x: tensor<1x?x2xf32>) -> tensor<1x?x3xf32> {
  %w = "tosa.const"() {values = dense<1.0> : tensor<2x3xf32>} : () -> tensor<2x3xf32>
  %s = tosa.const_shape {values = dense<[1, 2, 3]> : tensor<3xindex>} : () -> !tosa.shape<3>
  %w3 = tosa.reshape %w, %s : (tensor<2x3xf32>, !tosa.shape<3>) -> tensor<1x2x3xf32>
  %zp = "tosa.const"() {values = dense<0.0> : tensor<1xf32>} : () -> tensor<1xf32>
  %y = tosa.matmul %x, %w3, %zp, %zp : (tensor<1x?x2xf32>, tensor<1x2x3xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<1x?x3xf32>
  return %y : tensor<1x?x3xf32>
}

// -----

// An active op without a rule is an error at that op (its ONNX node name).
// ERR: error: {{.*}}qf-grad: no adjoint rule for tosa.clamp
func.func @main(%x: tensor<1x4x2xf32>) -> tensor<1x4x3xf32> {
  %w = "tosa.const"() {values = dense<1.0> : tensor<2x3xf32>} : () -> tensor<2x3xf32>
  %s = tosa.const_shape {values = dense<[1, 2, 3]> : tensor<3xindex>} : () -> !tosa.shape<3>
  %w3 = tosa.reshape %w, %s : (tensor<2x3xf32>, !tosa.shape<3>) -> tensor<1x2x3xf32>
  %zp = "tosa.const"() {values = dense<0.0> : tensor<1xf32>} : () -> tensor<1xf32>
  %y = tosa.matmul %x, %w3, %zp, %zp : (tensor<1x4x2xf32>, tensor<1x2x3xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<1x4x3xf32>
  %c = tosa.clamp %y {min_val = 0.0 : f32, max_val = 6.0 : f32} : (tensor<1x4x3xf32>) -> tensor<1x4x3xf32> loc("/relu6")
  return %c : tensor<1x4x3xf32>
}
