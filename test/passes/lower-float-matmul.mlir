// RUN: qforge-opt %s -split-input-file --pass-pipeline='builtin.module(func.func(qf-lower-float-matmul{parallel-min-weights=0},canonicalize,cse))' | FileCheck %s

// A float linear layer (batch 1, static weights [64, 48]) becomes the GEMM micro-kernel:
// per group of tiles of 32 output channels (threads; one tile per group at this size),
// per chunk of 256 input channels, each tile's weights are first copied into a
// contiguous 256 x 32 panel with masked loads (48 = 32 + 16: the second tile's second half
// is masked off), then 8 rows of x at a time and then one multiply it from the panel,
// accumulating into the output like linalg. The numbers are checked end to end
// (test/e2e/cpu-kernels.test, and the bundled models against torch).
// At most 4 rows (a run-time test: the rows are dynamic) take the streaming GEMV instead
// (the @decode case below).
// CHECK-LABEL: func.func @linear
// CHECK:         %[[M:.+]] = memref.dim
// CHECK:         %[[W:.+]] = memref.collapse_shape %arg1 {{\[}}[0, 1, 2]] : memref<1x64x48xf32> into memref<3072xf32>
// CHECK:         %[[FEW:.+]] = arith.cmpi ule, %[[M]], %c4 : index
// CHECK:         scf.if %[[FEW]] {
// CHECK-NOT:       linalg.batch_matmul
// CHECK:         scf.parallel (%{{.+}}) = (%c0) to (%c2) step (%c1) {
// CHECK:           %[[P:.+]] = memref.alloc() {alignment = 64 : i64} : memref<8192xf32>
// CHECK:           scf.for %{{.+}} = %c0 to %c64 step %c1 {
// CHECK:             scf.for
// CHECK:               vector.create_mask %{{.+}} : vector<16xi1>
// CHECK:               vector.maskedload %[[W]][%{{.+}}], %{{.+}} : memref<3072xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
// CHECK:               vector.store %{{.+}}, %[[P]]
// CHECK:           scf.for
// CHECK:             scf.for %{{.+}} = %c0 to %{{.+}} step %c8 {
// CHECK-COUNT-16:      vector.maskedload
// CHECK:               scf.for
// CHECK:                 vector.load %[[P]][%{{.+}}] : memref<8192xf32>, vector<16xf32>
// CHECK-COUNT-16:        vector.fma
// CHECK:           memref.dealloc %[[P]]
// CHECK-NOT:     linalg.batch_matmul
// CHECK:         return

func.func @linear(%x: memref<1x?x64xf32>, %w: memref<1x64x48xf32>, %y: memref<1x?x48xf32>) {
  linalg.batch_matmul ins(%x, %w : memref<1x?x64xf32>, memref<1x64x48xf32>) outs(%y : memref<1x?x48xf32>)
  return
}

// -----

// Attention's products (dynamic shapes, 8 heads): the same micro-kernel per (head, tile of
// 32 columns), the right operand read in place; threads over (head, tile) only when
// B*M*N*K >= 16 * parallel-min-weights (here 0), tested at run time.
// CHECK-LABEL: func.func @attention_scores
// CHECK-NOT:     linalg.batch_matmul
// CHECK:         %[[BIG:.+]] = arith.cmpi uge, %{{.+}}, %c0
// CHECK:         scf.if %[[BIG]] {
// CHECK:           scf.parallel (%[[H:.+]], %{{.+}}) = (%c0, %c0) to (%c8, %{{.+}}) step (%c1, %c1) {
// CHECK:             vector.maskedload %arg1[%[[H]], %{{.+}}, %{{.+}}], %{{.+}} : memref<8x32x?xf32>, vector<16xi1>, vector<16xf32> into vector<16xf32>
// CHECK:             vector.fma
// CHECK:         } else {
// CHECK:           scf.for %{{.+}} = %c0 to %c8 step %c1 {
// CHECK:             vector.fma
// CHECK-NOT:     linalg.batch_matmul
// CHECK:         return
func.func @attention_scores(%q: memref<8x?x32xf32>, %k: memref<8x32x?xf32>, %s: memref<8x?x?xf32>) {
  linalg.batch_matmul ins(%q, %k : memref<8x?x32xf32>, memref<8x32x?xf32>) outs(%s : memref<8x?x?xf32>)
  return
}

// -----

// Static rows above 4: the kernel only.
// CHECK-LABEL: func.func @static_rows
// CHECK-NOT:     scf.if
// CHECK-NOT:     linalg.batch_matmul
// CHECK:         scf.parallel
// CHECK:         return
func.func @static_rows(%x: memref<1x16x64xf32>, %w: memref<1x64x48xf32>, %y: memref<1x16x48xf32>) {
  linalg.batch_matmul ins(%x, %w : memref<1x16x64xf32>, memref<1x64x48xf32>) outs(%y : memref<1x16x48xf32>)
  return
}

// -----

// Decode rows of a layer with K = 256: the streaming GEMV, one body per row count (1 shown,
// then 2 .. 4), split into 4 chunks of 64 weight rows (threads), each summing four weight
// rows at a time into its own partial output [chunk][row][48 = N padded to vectors]
// (zeroed first); then out += the four partials, the last vector masked (N = 40). The
// numbers are checked end to end (test/e2e/cpu-kernels.test: float K 1000 at M = 1 .. 4).
// CHECK-LABEL: func.func @decode
// CHECK:         %[[W:.+]] = memref.collapse_shape %arg1
// CHECK:         scf.if
// CHECK:           %[[ONE:.+]] = arith.cmpi eq, %{{.+}}, %c1 : index
// CHECK:           scf.if %[[ONE]] {
// CHECK:             %[[P:.+]] = memref.alloc() {alignment = 64 : i64} : memref<192xf32>
// CHECK:             scf.parallel (%[[C:.+]]) = (%c0) to (%c4) step (%c1) {
// CHECK:               %[[K0:.+]] = arith.muli %[[C]], %c64 : index
// CHECK:               vector.store %cst, %[[P]]
// CHECK:               scf.for %[[K:.+]] = %[[K0]] to %{{.+}} step %c4 {
// CHECK-COUNT-4:         memref.load %arg0
// CHECK:                 scf.for
// CHECK-COUNT-4:           vector.load %[[W]]
// CHECK:                   vector.load %[[P]]
// CHECK-COUNT-4:           vector.fma
// CHECK:                   vector.store {{.+}}, %[[P]]
// CHECK:             scf.for
// CHECK:               vector.load %arg2
// CHECK-COUNT-4:       arith.addf
// CHECK:               vector.store {{.+}}, %arg2
// CHECK:             vector.maskedstore %arg2
// CHECK:             memref.dealloc %[[P]]
// CHECK:           } else {
// CHECK:             memref.alloc() {alignment = 64 : i64} : memref<384xf32>
// CHECK-NOT:     linalg.matmul
// CHECK:         return
func.func @decode(%x: memref<?x256xf32>, %w: memref<256x40xf32>, %y: memref<?x40xf32>) {
  linalg.matmul ins(%x, %w : memref<?x256xf32>, memref<256x40xf32>) outs(%y : memref<?x40xf32>)
  return
}
