// RUN: qforge-opt %s -split-input-file --pass-pipeline='builtin.module(func.func(qf-lower-fused-matmul-to-loops{parallel-min-weights=0},canonicalize,cse))' | FileCheck %s
// RUN: qforge-opt %s -split-input-file --pass-pipeline='builtin.module(func.func(qf-lower-fused-matmul-to-loops{int8-activations=true},canonicalize,cse))' | FileCheck %s --check-prefix=INT8
// RUN: qforge-opt %s -split-input-file --pass-pipeline='builtin.module(func.func(qf-lower-fused-matmul-to-loops{vector-width=8 int8-activations=true},canonicalize,cse))' | FileCheck %s --check-prefix=AVX2

// Which CPU kernel each fused matmul gets (the arithmetic is checked numerically in
// test/e2e/cpu-kernels.test). 4-bit g128, K = 1024, N = 64: a run-time test on the rows M
// picks the GEMV (M <= 4) or the GEMM.
// GEMV: the activations are transposed to the lane order once; per row n (threads) and
// block of 16 units (a unit = 4 words = 32 codes), one 64-word load, one shuffle per word
// of the unit, codes cut with constant shifts, f32 FMAs; the 4 group scales of a block
// come from one short load spread by a shuffle.
// GEMM: per tile of 32 output channels (threads), a heap panel of 256 x 32 decoded
// weights (codes gathered across the tile's rows), then the 8-row micro-kernel.
// CHECK-LABEL: func.func @four_bit_g128
// CHECK:         %[[M:.+]] = memref.dim %arg0, %c0 : memref<?x1024xf32>
// CHECK:         %[[SMALL:.+]] = arith.cmpi ule, %[[M]], %c4 : index
// CHECK:         scf.if %[[SMALL]] {
// CHECK:           memref.alloc(%{{.+}}) {alignment = 64 : i64} : memref<?xf32>
// CHECK:           scf.parallel (%[[N:.+]]) = (%c0) to (%c64) step (%c1) {
// CHECK:             vector.load %{{.+}} : memref<8192xi32>, vector<64xi32>
// CHECK:             vector.shuffle %{{.+}} [0, 4, 8, 12, 16, 20, 24, 28, 32, 36, 40, 44, 48, 52, 56, 60]
// CHECK:             vector.fma
// CHECK:             vector.maskedload %{{.+}} : memref<512xf32>, vector<4xi1>, vector<4xf32> into vector<4xf32>
// CHECK:             vector.shuffle %{{.+}} [0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3]
// CHECK:             vector.reduction <add>, %{{.+}} fastmath<reassoc> : vector<16xf32> into f32
// CHECK:         } else {
// CHECK:           scf.parallel (%{{.+}}) = (%c0) to (%c2) step (%c1) {
// CHECK:             memref.alloc() {alignment = 64 : i64} : memref<8192xf32>
// CHECK:             vector.gather %{{.+}} : memref<8192xi32>, vector<16xi32>, vector<16xi1>, vector<16xi32> into vector<16xi32>
// CHECK:             scf.for %{{.+}} = %c0 to %{{.+}} step %c8 {
// CHECK-COUNT-16:      vector.fma
// CHECK:             memref.dealloc
// CHECK-NOT:     qf.fused_matmul
// With int8 activations, the GEMV multiplies bytes with vpdpbusd, 8 slots per block; the
// GEMM quantizes the activations the same way and fills, per tile and unit, a byte panel
// (8 slots x 2 vectors of i32) with the lanes' scales and negated zeros (-8: symmetric), then its
// micro-kernel (4 rows x 2 vectors) starts each unit's i32 sums at -zero * sum(xq), adds
// 8 slots x 4 rows x 2 vectors vpdpbusd and scales the sums into f32 (sitofp, fma).
// INT8-LABEL: func.func @four_bit_g128
// INT8:         scf.if
// INT8:           memref.alloc(%{{.+}}) {alignment = 64 : i64} : memref<?xi32>
// INT8:           math.roundeven
// INT8-COUNT-8:   llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"
// INT8:         } else {
// INT8:           memref.alloc(%{{.+}}) {alignment = 64 : i64} : memref<?xi32>
// INT8:           math.roundeven
// INT8:           memref.alloc() {alignment = 64 : i64} : memref<2048xi32>
// INT8:           vector.gather
// INT8:           arith.muli %{{.+}}, %{{.+}} : vector<16xi32>
// INT8-COUNT-64:  llvm.call_intrinsic "llvm.x86.avx512.vpdpbusd.512"
// INT8:           arith.sitofp %{{.+}} : vector<16xi32> to vector<16xf32>
// INT8:           vector.fma
// INT8:         return
// With 8-lane vectors: a block is 8 units = 32 words, f32 activations (vpdpbusd on zmm only),
// and this layer is below the threading threshold: plain loops.
// AVX2-LABEL: func.func @four_bit_g128
// AVX2-NOT:     scf.parallel
// AVX2:         vector.load %{{.+}} : memref<8192xi32>, vector<32xi32>
// AVX2-NOT:     llvm.call_intrinsic
// AVX2:         return
func.func @four_bit_g128(%x: memref<?x1024xf32>, %c: memref<64x128xi32>, %s: memref<64x8xf32>, %b: memref<64xf32>, %y: memref<?x64xf32>) {
  qf.fused_matmul #qf.scheme<affine, bits = 4, group = 128, symmetric> %x, %c scales(%s) bias(%b) outs(%y) : (memref<?x1024xf32>, memref<64x128xi32>, memref<64x8xf32>, memref<64xf32>, memref<?x64xf32>) -> ()
  return
}

// -----

// 3-bit codes straddle words inside a unit (3 words): code 10 is cut from words 0 and 1.
// They keep f32 activations even when int8 is asked for.
// CHECK-LABEL: func.func @three_bit
// CHECK:         vector.shuffle %{{.+}} [0, 3, 6, 9, 12, 15, 18, 21, 24, 27, 30, 33, 36, 39, 42, 45]
// CHECK:         arith.shrui %{{.+}}, %{{.+}} : vector<16xi32>
// CHECK:         arith.shli %{{.+}}, %{{.+}} : vector<16xi32>
// INT8-LABEL: func.func @three_bit
// INT8-NOT:     llvm.call_intrinsic
// INT8:         return
func.func @three_bit(%x: memref<1x96xf32>, %c: memref<4x9xi32>, %s: memref<4x1xf32>, %y: memref<1x4xf32>) {
  qf.fused_matmul #qf.scheme<affine, bits = 3, group = 96, symmetric> %x, %c scales(%s) outs(%y) : (memref<1x96xf32>, memref<4x9xi32>, memref<4x1xf32>, memref<1x4xf32>) -> ()
  return
}

// -----

// Groups of 16 codes are smaller than a unit: the scalar kernel, one parallel iteration
// per output element (the row loop of this one-row x folds away).
// CHECK-LABEL: func.func @small_groups
// CHECK-NOT:     vector.
// CHECK:         scf.parallel (%{{.+}}) = (%c0) to (%c4)
// CHECK-NOT:     vector.
// CHECK:         return
func.func @small_groups(%x: memref<1x64xf32>, %c: memref<4x8xi32>, %s: memref<4x4xf32>, %y: memref<1x4xf32>) {
  qf.fused_matmul #qf.scheme<affine, bits = 4, group = 16, symmetric> %x, %c scales(%s) outs(%y) : (memref<1x64xf32>, memref<4x8xi32>, memref<4x4xf32>, memref<1x4xf32>) -> ()
  return
}
