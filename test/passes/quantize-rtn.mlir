// RUN: qforge-opt %s -split-input-file --pass-pipeline='builtin.module(func.func(qf-quantize-rtn{bits=4 group-size=4 symmetric=true}))' | FileCheck %s
// RUN: qforge-opt %s -split-input-file --pass-pipeline='builtin.module(func.func(qf-quantize-rtn{bits=2 group-size=-1 symmetric=false}))' | FileCheck %s --check-prefix=ZP

// One output channel, K = 4: W[:, 0] = [0.7, -0.3, 0.0, 0.14] forms one group.
// Symmetric 4-bit: scale = max|w| / 7 = 0.1 (f32 0x3DCCCCCD), q = round(w / scale) =
// [7, -3, 0, 1], stored codes u = q + 8 = [15, 5, 8, 9], packed LSB first into one word:
// 15 | 5 << 4 | 8 << 8 | 9 << 12 = 0x985F. Ŵ = [0.7, -0.3, 0, 0.1], so the relative weight
// error is 0.04 / |W| = 0.04 / 0.774339 = 0.051657.
//
// With 2 bits and a zero point per channel: lo = -0.3, hi = 0.7, scale = 1/3
// (0x3EAAAAAB), zero = round(0.3 * 3) = 1, codes = clamp(round(w * 3) + 1, 0, 3) =
// [3, 0, 1, 1] → 3 | 0 << 2 | 1 << 4 | 1 << 6 = 0x53.

// CHECK-LABEL: func.func @one_group
// CHECK-DAG:     %[[CODES:.+]] = "tosa.const"() <{values = dense_resource<w.codes> : tensor<1x1xi32>}> {qf.name = "w.codes"}
// CHECK-DAG:     %[[SCALES:.+]] = "tosa.const"() <{values = dense_resource<w.scales> : tensor<1x1xf32>}> {qf.name = "w.scales"}
// CHECK:         %[[W:.+]] = qf.dequantize #qf.scheme<affine, bits = 4, group = 4, symmetric> %[[CODES]] scales(%[[SCALES]] : tensor<1x1xf32>) {qf.layer = "w", qf.weight_error = 0.05165{{[0-9]*}} : f64} : tensor<1x1xi32> -> tensor<1x4xf32>
// CHECK:         %[[T:.+]] = tosa.transpose %[[W]] {perms = array<i32: 1, 0>} : (tensor<1x4xf32>) -> tensor<4x1xf32>
// CHECK:         %[[B:.+]] = tosa.reshape %[[T]], %{{.+}} : (tensor<4x1xf32>, !tosa.shape<3>) -> tensor<1x4x1xf32>
// CHECK:         tosa.matmul %{{.+}}, %[[B]], %{{.+}}, %{{.+}}
// CHECK:       w.codes: "0x040000005F980000"
// CHECK:       w.scales: "0x04000000CDCCCC3D"

// ZP-LABEL: func.func @one_group
// ZP:         qf.dequantize #qf.scheme<affine, bits = 2, per_channel, zero_point> %{{.+}} scales(%{{.+}} : tensor<1x1xf32>) zero_points(%{{.+}} : tensor<1x1xi8>)
// ZP-DAG:     w.codes: "0x0400000053000000"
// ZP-DAG:     w.scales: "0x04000000ABAAAA3E"
// ZP-DAG:     w.zero_points: "0x0100000001"
func.func @one_group(%x: tensor<1x1x4xf32>) -> tensor<1x1x1xf32> {
  %w = "tosa.const"() {values = dense<[[0.7], [-0.3], [0.0], [0.14]]> : tensor<4x1xf32>, qf.name = "w"} : () -> tensor<4x1xf32>
  %s = tosa.const_shape {values = dense<[1, 4, 1]> : tensor<3xindex>} : () -> !tosa.shape<3>
  %w3 = tosa.reshape %w, %s : (tensor<4x1xf32>, !tosa.shape<3>) -> tensor<1x4x1xf32>
  %zp = "tosa.const"() {values = dense<0.0> : tensor<1xf32>} : () -> tensor<1xf32>
  %y = tosa.matmul %x, %w3, %zp, %zp : (tensor<1x1x4xf32>, tensor<1x4x1xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<1x1x1xf32>
  return %y : tensor<1x1x1xf32>
}

// -----

// A matmul of two activations has no constant weight and is left alone.
// CHECK-LABEL: func.func @activations_only
// CHECK-NOT:     qf.dequantize
// CHECK:         tosa.matmul %arg0, %arg1
func.func @activations_only(%a: tensor<1x2x4xf32>, %b: tensor<1x4x3xf32>) -> tensor<1x2x3xf32> {
  %zp = "tosa.const"() {values = dense<0.0> : tensor<1xf32>} : () -> tensor<1xf32>
  %y = tosa.matmul %a, %b, %zp, %zp : (tensor<1x2x4xf32>, tensor<1x4x3xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<1x2x3xf32>
  return %y : tensor<1x2x3xf32>
}
