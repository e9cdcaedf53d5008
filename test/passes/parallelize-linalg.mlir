// RUN: qforge-opt %s --qf-parallelize-linalg | FileCheck %s
// RUN: qforge-opt %s --qf-parallelize-linalg=min-work=1000000 | FileCheck %s --check-prefix=HIGH

#id2 = affine_map<(d0, d1) -> (d0, d1)>
#id3 = affine_map<(d0, d1, d2) -> (d0, d1, d2)>
#row3 = affine_map<(d0, d1, d2) -> (d0, d1)>

// 256 x 512 points: the rows run on threads, each row's columns in one serial loop.
// CHECK-LABEL: func.func @large
// CHECK-NOT: scf.if
// CHECK: scf.parallel (%[[I:.+]]) =
// CHECK-NEXT: scf.for %[[J:.+]] =
// CHECK: %[[ROW:.+]] = affine.apply #{{.+}}(%[[I]])
// CHECK: %[[COL:.+]] = affine.apply #{{.+}}(%[[J]])
// CHECK: memref.load %{{.+}}[%[[ROW]], %[[COL]]]
// CHECK: math.exp
// CHECK-NOT: linalg.generic
// CHECK-LABEL: func.func @small
// HIGH-LABEL: func.func @large
// HIGH-NOT: scf.if
// HIGH: linalg.generic
func.func @large(%x: memref<256x512xf32>, %y: memref<256x512xf32>) {
  linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%x : memref<256x512xf32>) outs(%y : memref<256x512xf32>) {
  ^bb0(%in: f32, %out: f32):
    %v = math.exp %in : f32
    linalg.yield %v : f32
  }
  return
}

// Too small to start threads.
// CHECK-NOT: scf.if
// CHECK: linalg.generic
func.func @small(%x: memref<4x256xf32>, %y: memref<4x256xf32>) {
  linalg.generic {indexing_maps = [#id2, #id2], iterator_types = ["parallel", "parallel"]}
      ins(%x : memref<4x256xf32>) outs(%y : memref<4x256xf32>) {
  ^bb0(%in: f32, %out: f32):
    %v = math.exp %in : f32
    linalg.yield %v : f32
  }
  return
}

// Row sums with a dynamic row count: the run-time size decides; the two row loops run
// on threads, the reduction stays inside.
// CHECK-LABEL: func.func @row_sums
// CHECK: %[[BIG:.+]] = arith.cmpi uge
// CHECK: scf.if %[[BIG]] {
// CHECK: scf.parallel (%{{.+}}, %{{.+}}) =
// CHECK-NEXT: scf.for
// CHECK: arith.addf
// CHECK: } else {
// CHECK-NEXT: linalg.generic
// HIGH-LABEL: func.func @row_sums
// HIGH: scf.if
func.func @row_sums(%x: memref<4x?x256xf32>, %y: memref<4x?xf32>) {
  linalg.generic {indexing_maps = [#id3, #row3], iterator_types = ["parallel", "parallel", "reduction"]}
      ins(%x : memref<4x?x256xf32>) outs(%y : memref<4x?xf32>) {
  ^bb0(%in: f32, %acc: f32):
    %s = arith.addf %in, %acc : f32
    linalg.yield %s : f32
  }
  return
}
