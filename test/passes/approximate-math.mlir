// RUN: qforge-opt %s --qf-approximate-math | FileCheck %s

// exp and tanh become inline polynomials (no call left for LLVM to make); rsqrt, which
// LLVM lowers to an instruction sequence itself, stays.
// CHECK-LABEL: func.func @activations
// CHECK-NOT: math.exp
// CHECK-NOT: math.tanh
// CHECK: math.fma
// CHECK: math.rsqrt
func.func @activations(%x: f32, %v: vector<16xf32>) -> (f32, vector<16xf32>, f32) {
  %e = math.exp %x : f32
  %t = math.tanh %v : vector<16xf32>
  %r = math.rsqrt %x : f32
  return %e, %t, %r : f32, vector<16xf32>, f32
}
