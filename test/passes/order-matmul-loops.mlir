// RUN: qforge-opt %s --qf-order-matmul-loops | FileCheck %s
// RUN: qforge-opt %s --qf-order-matmul-loops --convert-linalg-to-loops | FileCheck %s --check-prefix=LOOPS

// The reduction k moves before the output column n: C[b, m, n] += A[b, m, k] · B[b, k, n].
// CHECK-DAG: #[[$A:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d2)>
// CHECK-DAG: #[[$B:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d2, d3)>
// CHECK-DAG: #[[$C:.+]] = affine_map<(d0, d1, d2, d3) -> (d0, d1, d3)>
// CHECK-DAG: #[[$A2:.+]] = affine_map<(d0, d1, d2) -> (d0, d1)>
// CHECK-DAG: #[[$B2:.+]] = affine_map<(d0, d1, d2) -> (d1, d2)>
// CHECK-DAG: #[[$C2:.+]] = affine_map<(d0, d1, d2) -> (d0, d2)>
// CHECK-LABEL: func.func @batch
// CHECK: linalg.generic {indexing_maps = [#[[$A]], #[[$B]], #[[$C]]], iterator_types = ["parallel", "parallel", "reduction", "parallel"]}
// CHECK-NOT: linalg.batch_matmul
// LOOPS-LABEL: func.func @batch
// LOOPS: scf.for %[[$B:.+]] =
// LOOPS: scf.for %[[M:.+]] =
// LOOPS: scf.for %[[K:.+]] =
// LOOPS: scf.for %[[N:.+]] =
// LOOPS: memref.load %{{.+}}[%[[$B]], %[[M]], %[[K]]]
// LOOPS: memref.load %{{.+}}[%[[$B]], %[[K]], %[[N]]]
// LOOPS: memref.load %{{.+}}[%[[$B]], %[[M]], %[[N]]]
func.func @batch(%a: memref<2x?x8xf32>, %b: memref<2x8x16xf32>, %c: memref<2x?x16xf32>) {
  linalg.batch_matmul ins(%a, %b : memref<2x?x8xf32>, memref<2x8x16xf32>) outs(%c : memref<2x?x16xf32>)
  return
}

// CHECK-LABEL: func.func @plain
// CHECK: linalg.generic {indexing_maps = [#[[$A2]], #[[$B2]], #[[$C2]]], iterator_types = ["parallel", "reduction", "parallel"]}
func.func @plain(%a: memref<4x8xf32>, %b: memref<8x16xf32>, %c: memref<4x16xf32>) {
  linalg.matmul ins(%a, %b : memref<4x8xf32>, memref<8x16xf32>) outs(%c : memref<4x16xf32>)
  return
}
