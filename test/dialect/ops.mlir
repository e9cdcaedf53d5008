// RUN: qforge-opt %s | FileCheck %s
// RUN: qforge-opt %s --mlir-print-op-generic | qforge-opt | FileCheck %s
// Round trip of every qf op and scheme form, through the custom and the generic syntax.

// CHECK-LABEL: func.func @affine_group_symmetric
// CHECK: qf.dequantize #qf.scheme<affine, bits = 4, group = 32, symmetric> %{{.*}} scales(%{{.*}} : tensor<8x2xf32>) : tensor<8x8xi32> -> tensor<8x64xf32>
func.func @affine_group_symmetric(%c: tensor<8x8xi32>, %s: tensor<8x2xf32>) -> tensor<8x64xf32> {
  %w = qf.dequantize #qf.scheme<affine, bits = 4, group = 32, symmetric> %c scales(%s : tensor<8x2xf32>) : tensor<8x8xi32> -> tensor<8x64xf32>
  return %w : tensor<8x64xf32>
}

// 3-bit codes straddle words: 10 codes x 3 bits = 30 bits, one word per row.
// CHECK-LABEL: func.func @affine_per_channel_zero_point
// CHECK: qf.dequantize #qf.scheme<affine, bits = 3, per_channel, zero_point> %{{.*}} scales(%{{.*}} : tensor<4x1xf16>) zero_points(%{{.*}} : tensor<4x1xi8>)
func.func @affine_per_channel_zero_point(%c: tensor<4x1xi32>, %s: tensor<4x1xf16>, %z: tensor<4x1xi8>) -> tensor<4x10xf32> {
  %w = qf.dequantize #qf.scheme<affine, bits = 3, per_channel, zero_point> %c scales(%s : tensor<4x1xf16>) zero_points(%z : tensor<4x1xi8>) : tensor<4x1xi32> -> tensor<4x10xf32>
  return %w : tensor<4x10xf32>
}

// CHECK-LABEL: func.func @affine_per_tensor
// CHECK: qf.dequantize #qf.scheme<affine, bits = 8, per_tensor, symmetric>
func.func @affine_per_tensor(%c: tensor<4x3xi32>, %s: tensor<1x1xf32>) -> tensor<4x12xf32> {
  %w = qf.dequantize #qf.scheme<affine, bits = 8, per_tensor, symmetric> %c scales(%s : tensor<1x1xf32>) : tensor<4x3xi32> -> tensor<4x12xf32>
  return %w : tensor<4x12xf32>
}

// CHECK-LABEL: func.func @codebook_with_outliers
// CHECK: %[[W:.+]] = qf.dequantize #qf.scheme<codebook, bits = 3> %{{.*}} lut(%{{.*}} : tensor<4x8xf32>)
// CHECK: qf.sparse_outliers %[[W]], %{{.*}}, %{{.*}}, %{{.*}} : tensor<4x64xf32>, tensor<5xi32>, tensor<2xi32>, tensor<2xf32>
func.func @codebook_with_outliers(%c: tensor<4x6xi32>, %lut: tensor<4x8xf32>) -> tensor<4x64xf32> {
  %rp = arith.constant dense<[0, 1, 1, 2, 2]> : tensor<5xi32>
  %ci = arith.constant dense<[3, 63]> : tensor<2xi32>
  %v = arith.constant dense<[2.5, -4.0]> : tensor<2xf32>
  %w = qf.dequantize #qf.scheme<codebook, bits = 3> %c lut(%lut : tensor<4x8xf32>) : tensor<4x6xi32> -> tensor<4x64xf32>
  %w2 = qf.sparse_outliers %w, %rp, %ci, %v : tensor<4x64xf32>, tensor<5xi32>, tensor<2xi32>, tensor<2xf32>
  return %w2 : tensor<4x64xf32>
}

// CHECK-LABEL: func.func @fused_on_tensors
// CHECK: qf.fused_matmul #qf.scheme<affine, bits = 2, group = 16, zero_point> %{{.*}}, %{{.*}} scales(%{{.*}}) zero_points(%{{.*}}) bias(%{{.*}}) outs(%{{.*}})
func.func @fused_on_tensors(%x: tensor<1x3x64xf32>, %c: tensor<8x4xi32>, %s: tensor<8x4xf32>, %z: tensor<8x4xi8>, %b: tensor<8xf32>) -> tensor<1x3x8xf32> {
  %init = tensor.empty() : tensor<1x3x8xf32>
  %y = qf.fused_matmul #qf.scheme<affine, bits = 2, group = 16, zero_point> %x, %c scales(%s) zero_points(%z) bias(%b) outs(%init) : (tensor<1x3x64xf32>, tensor<8x4xi32>, tensor<8x4xf32>, tensor<8x4xi8>, tensor<8xf32>, tensor<1x3x8xf32>) -> tensor<1x3x8xf32>
  return %y : tensor<1x3x8xf32>
}

// CHECK-LABEL: func.func @fused_on_buffers_with_outliers
// CHECK: qf.fused_matmul #qf.scheme<codebook, bits = 4> %{{.*}}, %{{.*}} lut(%{{.*}}) outliers(%{{.*}}, %{{.*}}, %{{.*}}) outs(%{{[a-z0-9_]+}}) : (memref<2x64xf32>, {{.*}}, memref<2x8xf32>) -> (){{ *$}}
func.func @fused_on_buffers_with_outliers(%x: memref<2x64xf32>, %c: memref<8x8xi32>, %lut: memref<8x16xf32>, %rp: memref<9xi32>, %ci: memref<3xi32>, %v: memref<3xf32>, %y: memref<2x8xf32>) {
  qf.fused_matmul #qf.scheme<codebook, bits = 4> %x, %c lut(%lut) outliers(%rp, %ci, %v) outs(%y) : (memref<2x64xf32>, memref<8x8xi32>, memref<8x16xf32>, memref<9xi32>, memref<3xi32>, memref<3xf32>, memref<2x8xf32>) -> ()
  return
}
