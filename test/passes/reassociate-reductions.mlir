// RUN: qforge-opt %s --qf-reassociate-reductions | FileCheck %s

#id = affine_map<(d0, d1) -> (d0, d1)>
#row = affine_map<(d0, d1) -> (d0)>

// RMSNorm's sum of squares: the accumulating add may be reordered, the square not.
// CHECK-LABEL: func.func @sum_of_squares
// CHECK: arith.mulf %{{.+}}, %{{.+}} : f32
// CHECK-NEXT: arith.addf %{{.+}}, %{{.+}} fastmath<reassoc> : f32
func.func @sum_of_squares(%x: memref<?x256xf32>, %s: memref<?xf32>) {
  linalg.generic {indexing_maps = [#id, #row], iterator_types = ["parallel", "reduction"]}
      ins(%x : memref<?x256xf32>) outs(%s : memref<?xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %sq = arith.mulf %in, %in : f32
    %sum = arith.addf %sq, %acc : f32
    linalg.yield %sum : f32
  }
  return
}

// Softmax's running maximum (linalg.reduce) keeps its own flags and gains reassoc.
// CHECK-LABEL: func.func @row_max
// CHECK: arith.maximumf %{{.+}}, %{{.+}} fastmath<reassoc,nnan> : f32
func.func @row_max(%x: memref<?x256xf32>, %m: memref<?xf32>) {
  linalg.reduce ins(%x : memref<?x256xf32>) outs(%m : memref<?xf32>) dimensions = [1]
    (%in: f32, %acc: f32) {
      %v = arith.maximumf %in, %acc fastmath<nnan> : f32
      linalg.yield %v : f32
    }
  return
}

// Elementwise ops have no accumulator: untouched.
// CHECK-LABEL: func.func @elementwise
// CHECK-NOT: reassoc
func.func @elementwise(%x: memref<?x256xf32>, %y: memref<?x256xf32>) {
  linalg.generic {indexing_maps = [#id, #id], iterator_types = ["parallel", "parallel"]}
      ins(%x : memref<?x256xf32>) outs(%y : memref<?x256xf32>) {
  ^bb0(%in: f32, %out: f32):
    %v = arith.addf %in, %out : f32
    linalg.yield %v : f32
  }
  return
}
