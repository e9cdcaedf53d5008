// RUN: qforge-opt %s --qf-lower-strided-copies | FileCheck %s
// RUN: qforge-opt %s --qf-lower-strided-copies --convert-linalg-to-loops | FileCheck %s --check-prefix=LOOPS

// Writing one half of rotate_half's concatenation: the target is a strided view.
// CHECK-LABEL: func.func @half
// CHECK: linalg.copy ins(%{{.+}} : memref<1x8x?x16xf32>) outs(%{{.+}} : memref<1x8x?x16xf32, strided<[?, ?, 32, 1], offset: 16>>)
// CHECK-NOT: memref.copy
// LOOPS-LABEL: func.func @half
// LOOPS-COUNT-4: scf.for
// LOOPS: memref.load
// LOOPS: memref.store
func.func @half(%src: memref<1x8x?x16xf32>, %dst: memref<1x8x?x32xf32>) {
  %c2 = arith.constant 2 : index
  %n = memref.dim %src, %c2 : memref<1x8x?x16xf32>
  %view = memref.subview %dst[0, 0, 0, 16] [1, 8, %n, 16] [1, 1, 1, 1]
      : memref<1x8x?x32xf32> to memref<1x8x?x16xf32, strided<[?, ?, 32, 1], offset: 16>>
  memref.copy %src, %view : memref<1x8x?x16xf32> to memref<1x8x?x16xf32, strided<[?, ?, 32, 1], offset: 16>>
  return
}

// Between contiguous buffers the copy stays one memmove.
// CHECK-LABEL: func.func @contiguous
// CHECK: memref.copy
// CHECK-NOT: linalg.copy
func.func @contiguous(%src: memref<4x?xf32>, %dst: memref<4x?xf32>) {
  memref.copy %src, %dst : memref<4x?xf32> to memref<4x?xf32>
  return
}
