// RUN: qforge-opt %s -split-input-file --pass-pipeline='builtin.module(func.func(qf-lower-fused-matmul-to-loops{vectorize=false},canonicalize,cse))' | FileCheck %s
// The scalar kernel (vectorize=false; also what schemes the vector kernels do not cover
// get). The vector kernels: cpu-kernels.mlir here, numerics in test/e2e/cpu-kernels.test.

// x [1, 2, 64] is viewed as [2, 64]; one parallel iteration per (row, output channel); per
// group of 32: scale * sum_k x[m,k] * (code - 8); then the bias. 4-bit codes fill words, and
// groups start on word boundaries, so each word is loaded once and its 8 codes are cut out
// with constant shifts (0, 4, ..., 28); a code-by-code loop takes any partial word left.
// CHECK-LABEL: func.func @affine_symmetric
// CHECK-DAG:     %[[C8F:.+]] = arith.constant 8.000000e+00 : f32
// CHECK-DAG:     %[[MASK:.+]] = arith.constant 15 : i32
// CHECK-DAG:     %[[SH4:.+]] = arith.constant 4 : i32
// CHECK-DAG:     %[[SH28:.+]] = arith.constant 28 : i32
// CHECK:         %[[XV:.+]] = memref.collapse_shape %arg0 {{\[}}[0, 1], [2]] : memref<1x2x64xf32> into memref<2x64xf32>
// CHECK:         scf.parallel (%[[M:.+]], %[[N:.+]]) =
// CHECK:           scf.for %[[G:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args
// CHECK:             scf.for %[[W:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args
// CHECK:               %[[WORD:.+]] = memref.load %arg1[%[[N]], %[[W]]] : memref<8x8xi32>
// CHECK:               %[[C0:.+]] = arith.andi %[[WORD]], %[[MASK]]
// CHECK:               %[[F0:.+]] = arith.uitofp %[[C0]] : i32 to f32
// CHECK:               arith.subf %[[F0]], %[[C8F]]
// CHECK:               memref.load %[[XV]][%[[M]], %{{.+}}]
// CHECK:               arith.shrui %[[WORD]], %[[SH4]]
// CHECK:               arith.shrui %[[WORD]], %[[SH28]]
// CHECK-NOT:           memref.load %arg1
// CHECK:               scf.yield
// CHECK:             scf.for
// CHECK:               arith.shrui
// CHECK:             memref.load %arg2[%[[N]], %[[G]]] : memref<8x2xf32>
// CHECK:           memref.load %arg3[%[[N]]] : memref<8xf32>
// CHECK:           memref.store %{{.+}}, %{{.+}}[%[[M]], %[[N]]] : memref<2x8xf32>
// CHECK-NOT:     qf.fused_matmul
func.func @affine_symmetric(%x: memref<1x2x64xf32>, %c: memref<8x8xi32>, %s: memref<8x2xf32>, %b: memref<8xf32>, %y: memref<1x2x8xf32>) {
  qf.fused_matmul #qf.scheme<affine, bits = 4, group = 32, symmetric> %x, %c scales(%s) bias(%b) outs(%y) : (memref<1x2x64xf32>, memref<8x8xi32>, memref<8x2xf32>, memref<8xf32>, memref<1x2x8xf32>) -> ()
  return
}

// -----

// 3-bit codes straddle words: the code is cut from the 64-bit pair of adjacent words, the
// second index clamped to the last word of the row. Zero points are read unsigned.
// CHECK-LABEL: func.func @straddling_zero_point
// CHECK:         %[[Z:.+]] = memref.load %arg3[%{{.+}}, %c0] : memref<4x1xi8>
// CHECK:         arith.extui %[[Z]] : i8 to i32
// CHECK:         arith.minui %{{.+}}, %c1
// CHECK:         arith.extui %{{.+}} : i32 to i64
// CHECK:         arith.shli %{{.+}}, %c32_i64
// CHECK:         arith.ori
// CHECK:         arith.trunci %{{.+}} : i64 to i32
// CHECK:         arith.andi %{{.+}}, %c7_i32
func.func @straddling_zero_point(%x: memref<1x20xf32>, %c: memref<4x2xi32>, %s: memref<4x1xf32>, %z: memref<4x1xi8>, %y: memref<1x4xf32>) {
  qf.fused_matmul #qf.scheme<affine, bits = 3, per_channel, zero_point> %x, %c scales(%s) zero_points(%z) outs(%y) : (memref<1x20xf32>, memref<4x2xi32>, memref<4x1xf32>, memref<4x1xi8>, memref<1x4xf32>) -> ()
  return
}

// -----

// A codebook reads the row's table; CSR outliers add x[col] * value after the dense part.
// CHECK-LABEL: func.func @codebook_outliers
// CHECK:         %[[IDX:.+]] = arith.index_castui %{{.+}} : i32 to index
// CHECK:         memref.load %arg2[%{{.+}}, %[[IDX]]] : memref<4x16xf32>
// CHECK:         memref.load %arg3[%{{.+}}] : memref<5xi32>
// CHECK:         scf.for
// CHECK:           memref.load %arg4[%{{.+}}] : memref<2xi32>
// CHECK:           memref.load %arg5[%{{.+}}] : memref<2xf32>
func.func @codebook_outliers(%x: memref<1x8xf32>, %c: memref<4x1xi32>, %l: memref<4x16xf32>, %rp: memref<5xi32>, %ci: memref<2xi32>, %v: memref<2xf32>, %y: memref<1x4xf32>) {
  qf.fused_matmul #qf.scheme<codebook, bits = 4> %x, %c lut(%l) outliers(%rp, %ci, %v) outs(%y) : (memref<1x8xf32>, memref<4x1xi32>, memref<4x16xf32>, memref<5xi32>, memref<2xi32>, memref<2xf32>, memref<1x4xf32>) -> ()
  return
}

// -----

// 3-bit codes in groups of 32: a unit is 3 words holding 32 codes. Code 10 takes bits
// 30..32, so it is (word0 >> 30) | (word1 << 2); code 21 takes bits 63..65, so it is
// (word1 >> 31) | (word2 << 1). Eight accumulators are summed after the unit loop.
// CHECK-LABEL: func.func @three_bit_units
// CHECK:         scf.for %[[U:.+]] = %{{.+}} to %{{.+}} step %{{.+}} iter_args(%{{[^)]*}}) -> (f32, f32, f32, f32, f32, f32, f32, f32)
// CHECK:           %[[W0:.+]] = memref.load %arg1[%{{.+}}, %{{.+}}] : memref<4x6xi32>
// CHECK:           %[[W1:.+]] = memref.load %arg1[%{{.+}}, %{{.+}}] : memref<4x6xi32>
// CHECK:           %[[W2:.+]] = memref.load %arg1[%{{.+}}, %{{.+}}] : memref<4x6xi32>
// CHECK:           %[[HI0:.+]] = arith.shrui %[[W0]], %c30_i32
// CHECK:           %[[LO1:.+]] = arith.shli %[[W1]], %c2_i32
// CHECK:           arith.ori %[[HI0]], %[[LO1]]
// CHECK:           %[[HI1:.+]] = arith.shrui %[[W1]], %c31_i32
// CHECK:           %[[LO2:.+]] = arith.shli %[[W2]], %c1_i32
// CHECK:           arith.ori %[[HI1]], %[[LO2]]
func.func @three_bit_units(%x: memref<1x64xf32>, %c: memref<4x6xi32>, %s: memref<4x2xf32>, %y: memref<1x4xf32>) {
  qf.fused_matmul #qf.scheme<affine, bits = 3, group = 32, symmetric> %x, %c scales(%s) outs(%y) : (memref<1x64xf32>, memref<4x6xi32>, memref<4x2xf32>, memref<1x4xf32>) -> ()
  return
}
