// RUN: qforge-opt %s --qf-drop-same-size-broadcasts | FileCheck %s
// RUN: qforge-opt %s --qf-drop-same-size-broadcasts --qf-fuse-elementwise | FileCheck %s --check-prefix=FUSED

// tosa-to-linalg's guard for `tosa.add %x, %y` with x, y : tensor<1x?xf32> of the same
// run-time length: the broadcast copy would write a tensor of x's own size, so both
// branches yield x, and the two elementwise ops fuse.
#id = affine_map<(d0, d1) -> (d0, d1)>
#bc = affine_map<(d0, d1) -> (d0, 0)>

// CHECK-LABEL: func.func @same_size
// CHECK-NOT: scf.if
// FUSED-LABEL: func.func @same_size
// FUSED: linalg.generic
// FUSED: math.exp
// FUSED: arith.addf
// FUSED-NOT: linalg.generic
func.func @same_size(%arg: tensor<1x?xf32>, %y: tensor<1x?xf32>) -> tensor<1x?xf32> {
  %c1 = arith.constant 1 : index
  %n = tensor.dim %arg, %c1 : tensor<1x?xf32>
  %e0 = tensor.empty(%n) : tensor<1x?xf32>
  %x = linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%arg : tensor<1x?xf32>) outs(%e0 : tensor<1x?xf32>) {
  ^bb0(%in: f32, %out: f32):
    %v = math.exp %in : f32
    linalg.yield %v : f32
  } -> tensor<1x?xf32>
  %one = arith.cmpi eq, %n, %c1 : index
  %g = scf.if %one -> (tensor<1x?xf32>) {
    %e = tensor.empty(%n) : tensor<1x?xf32>
    %b = linalg.generic {indexing_maps = [#bc, #id], iterator_types = ["parallel", "parallel"]}
        ins(%x : tensor<1x?xf32>) outs(%e : tensor<1x?xf32>) {
    ^bb0(%in: f32, %out: f32):
      linalg.yield %in : f32
    } -> tensor<1x?xf32>
    scf.yield %b : tensor<1x?xf32>
  } else {
    scf.yield %x : tensor<1x?xf32>
  }
  %e1 = tensor.empty(%n) : tensor<1x?xf32>
  %r = linalg.generic {indexing_maps = [#id, #id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%g, %y : tensor<1x?xf32>, tensor<1x?xf32>) outs(%e1 : tensor<1x?xf32>) {
  ^bb0(%a: f32, %b: f32, %out: f32):
    %s = arith.addf %a, %b : f32
    linalg.yield %s : f32
  } -> tensor<1x?xf32>
  return %r : tensor<1x?xf32>
}

// The output has another operand's length: x really is broadcast when its length is 1.
// CHECK-LABEL: func.func @other_size
// FUSED-LABEL: func.func @other_size
// CHECK: scf.if
func.func @other_size(%x: tensor<1x?xf32>, %y: tensor<1x?xf32>) -> tensor<1x?xf32> {
  %c1 = arith.constant 1 : index
  %n = tensor.dim %x, %c1 : tensor<1x?xf32>
  %m = tensor.dim %y, %c1 : tensor<1x?xf32>
  %one = arith.cmpi eq, %n, %c1 : index
  %g = scf.if %one -> (tensor<1x?xf32>) {
    %e = tensor.empty(%m) : tensor<1x?xf32>
    %b = linalg.generic {indexing_maps = [#bc, #id], iterator_types = ["parallel", "parallel"]}
        ins(%x : tensor<1x?xf32>) outs(%e : tensor<1x?xf32>) {
    ^bb0(%in: f32, %out: f32):
      linalg.yield %in : f32
    } -> tensor<1x?xf32>
    scf.yield %b : tensor<1x?xf32>
  } else {
    scf.yield %x : tensor<1x?xf32>
  }
  return %g : tensor<1x?xf32>
}

// The guard tests another value than x's length: the copy may run with x longer than 1.
// CHECK-LABEL: func.func @other_guard
// CHECK: scf.if
func.func @other_guard(%x: tensor<1x?xf32>, %k: index) -> tensor<1x?xf32> {
  %c1 = arith.constant 1 : index
  %n = tensor.dim %x, %c1 : tensor<1x?xf32>
  %one = arith.cmpi eq, %k, %c1 : index
  %g = scf.if %one -> (tensor<1x?xf32>) {
    %e = tensor.empty(%n) : tensor<1x?xf32>
    %b = linalg.generic {indexing_maps = [#bc, #id], iterator_types = ["parallel", "parallel"]}
        ins(%x : tensor<1x?xf32>) outs(%e : tensor<1x?xf32>) {
    ^bb0(%in: f32, %out: f32):
      linalg.yield %in : f32
    } -> tensor<1x?xf32>
    scf.yield %b : tensor<1x?xf32>
  } else {
    scf.yield %x : tensor<1x?xf32>
  }
  return %g : tensor<1x?xf32>
}
