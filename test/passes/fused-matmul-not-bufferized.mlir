// RUN: qforge-opt %s --pass-pipeline='builtin.module(func.func(qf-lower-fused-matmul-to-loops))' -verify-diagnostics
// RUN: qforge-opt %s --pass-pipeline='builtin.module(func.func(qf-emulate-warp-gemv))' -verify-diagnostics
// RUN: not qforge-opt %s --qf-lower-fused-matmul-to-gpu 2>&1 | FileCheck %s --check-prefix=GPU
// The lowerings of qf.fused_matmul take its memref form; a tensor-form one gets one error
// naming the op and what it was to be lowered to, and the pass fails.

// GPU: error: 'qf.fused_matmul' op must be bufferized before lowering to GPU kernels
func.func @tensor_form(%x: tensor<1x64xf32>, %c: tensor<8x8xi32>, %s: tensor<8x2xf32>, %y: tensor<1x8xf32>) -> tensor<1x8xf32> {
  // expected-error @below {{must be bufferized before lowering to loops}}
  %r = qf.fused_matmul #qf.scheme<affine, bits = 4, group = 32, symmetric> %x, %c scales(%s) outs(%y) : (tensor<1x64xf32>, tensor<8x8xi32>, tensor<8x2xf32>, tensor<1x8xf32>) -> tensor<1x8xf32>
  return %r : tensor<1x8xf32>
}
