// RUN: qforge-opt %s -split-input-file --pass-pipeline='builtin.module(func.func(qf-fuse-dequant-matmul))' | FileCheck %s

// dequantize → transpose → reshape → matmul, then reshape and a bias add broadcast along the
// last dimension: one qf.fused_matmul carrying the bias.
// CHECK-LABEL: func.func @linear_with_bias
// CHECK-SAME:    (%[[X:.+]]: tensor<1x2x8xf32>, %[[C:.+]]: tensor<4x1xi32>, %[[S:.+]]: tensor<4x1xf32>)
// CHECK:         %[[BIAS:.+]] = "tosa.const"() <{values = dense<[1.000000e+00, 2.000000e+00, 3.000000e+00, 4.000000e+00]> : tensor<4xf32>}>
// CHECK:         %[[INIT:.+]] = tensor.empty() : tensor<1x2x4xf32>
// CHECK:         %[[Y:.+]] = qf.fused_matmul #qf.scheme<affine, bits = 4, group = 8, symmetric> %[[X]], %[[C]] scales(%[[S]]) bias(%[[BIAS]]) outs(%[[INIT]]) {qf.layer = "fc"}
// CHECK-NOT:     tosa.matmul
// CHECK-NOT:     tosa.add
// CHECK:         %[[R:.+]] = tosa.reshape %[[Y]]
// CHECK:         return %[[R]]
func.func @linear_with_bias(%x: tensor<1x2x8xf32>, %c: tensor<4x1xi32>, %s: tensor<4x1xf32>) -> tensor<2x4xf32> {
  %w = qf.dequantize #qf.scheme<affine, bits = 4, group = 8, symmetric> %c scales(%s : tensor<4x1xf32>) {qf.layer = "fc"} : tensor<4x1xi32> -> tensor<4x8xf32>
  %t = tosa.transpose %w {perms = array<i32: 1, 0>} : (tensor<4x8xf32>) -> tensor<8x4xf32>
  %s3 = tosa.const_shape {values = dense<[1, 8, 4]> : tensor<3xindex>} : () -> !tosa.shape<3>
  %w3 = tosa.reshape %t, %s3 : (tensor<8x4xf32>, !tosa.shape<3>) -> tensor<1x8x4xf32>
  %zp = "tosa.const"() {values = dense<0.0> : tensor<1xf32>} : () -> tensor<1xf32>
  %m = tosa.matmul %x, %w3, %zp, %zp : (tensor<1x2x8xf32>, tensor<1x8x4xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<1x2x4xf32>
  %s2 = tosa.const_shape {values = dense<[2, 4]> : tensor<2xindex>} : () -> !tosa.shape<2>
  %m2 = tosa.reshape %m, %s2 : (tensor<1x2x4xf32>, !tosa.shape<2>) -> tensor<2x4xf32>
  %b = "tosa.const"() {values = dense<[1.0, 2.0, 3.0, 4.0]> : tensor<4xf32>} : () -> tensor<4xf32>
  %sb = tosa.const_shape {values = dense<[1, 4]> : tensor<2xindex>} : () -> !tosa.shape<2>
  %b2 = tosa.reshape %b, %sb : (tensor<4xf32>, !tosa.shape<2>) -> tensor<1x4xf32>
  %y = tosa.add %b2, %m2 : (tensor<1x4xf32>, tensor<2x4xf32>) -> tensor<2x4xf32>
  return %y : tensor<2x4xf32>
}

// -----

// Outliers travel into the fused op; a non-constant addend is not a bias.
// CHECK-LABEL: func.func @outliers_no_bias
// CHECK:         %[[Y:.+]] = qf.fused_matmul #qf.scheme<codebook, bits = 3> %{{.+}}, %{{.+}} lut(%{{.+}}) outliers(%{{.+}}, %{{.+}}, %{{.+}}) outs(%{{.+}})
// CHECK:         tosa.add %[[Y]], %arg
func.func @outliers_no_bias(%x: tensor<1x1x8xf32>, %c: tensor<4x1xi32>, %l: tensor<4x8xf32>, %rp: tensor<5xi32>, %ci: tensor<1xi32>, %v: tensor<1xf32>, %a: tensor<1x1x4xf32>) -> tensor<1x1x4xf32> {
  %w = qf.dequantize #qf.scheme<codebook, bits = 3> %c lut(%l : tensor<4x8xf32>) : tensor<4x1xi32> -> tensor<4x8xf32>
  %w2 = qf.sparse_outliers %w, %rp, %ci, %v : tensor<4x8xf32>, tensor<5xi32>, tensor<1xi32>, tensor<1xf32>
  %t = tosa.transpose %w2 {perms = array<i32: 1, 0>} : (tensor<4x8xf32>) -> tensor<8x4xf32>
  %s3 = tosa.const_shape {values = dense<[1, 8, 4]> : tensor<3xindex>} : () -> !tosa.shape<3>
  %w3 = tosa.reshape %t, %s3 : (tensor<8x4xf32>, !tosa.shape<3>) -> tensor<1x8x4xf32>
  %zp = "tosa.const"() {values = dense<0.0> : tensor<1xf32>} : () -> tensor<1xf32>
  %m = tosa.matmul %x, %w3, %zp, %zp : (tensor<1x1x8xf32>, tensor<1x8x4xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<1x1x4xf32>
  %y = tosa.add %m, %a : (tensor<1x1x4xf32>, tensor<1x1x4xf32>) -> tensor<1x1x4xf32>
  return %y : tensor<1x1x4xf32>
}

// -----

// A transpose that is not [1, 0] is not a dequantized linear weight.
// CHECK-LABEL: func.func @not_a_linear
// CHECK-NOT:     qf.fused_matmul
// CHECK:         tosa.matmul
func.func @not_a_linear(%x: tensor<1x2x8xf32>, %w: tensor<1x8x4xf32>) -> tensor<1x2x4xf32> {
  %t = tosa.transpose %w {perms = array<i32: 0, 1, 2>} : (tensor<1x8x4xf32>) -> tensor<1x8x4xf32>
  %zp = "tosa.const"() {values = dense<0.0> : tensor<1xf32>} : () -> tensor<1xf32>
  %m = tosa.matmul %x, %t, %zp, %zp : (tensor<1x2x8xf32>, tensor<1x8x4xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<1x2x4xf32>
  return %m : tensor<1x2x4xf32>
}
