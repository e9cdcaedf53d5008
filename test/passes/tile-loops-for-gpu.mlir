// RUN: qforge-opt %s --pass-pipeline="builtin.module(func.func(qf-tile-loops-for-gpu,gpu-map-parallel-loops{mapping-policy=innermost-first},convert-parallel-loops-to-gpu),canonicalize,cse)" | FileCheck %s
// RUN: not qforge-opt %s --qf-tile-loops-for-gpu=threads=96 2>&1 | FileCheck %s --check-prefix=BAD

// Threads go to the innermost dimensions first: [1, S, 256] gets blocks of 128 threads
// along the last dimension (grid 2 x S), not along the unit first dimension.
// CHECK-LABEL: func.func @rows
// CHECK:         %[[S:.+]] = memref.dim %arg0, %c1
// CHECK:         gpu.launch blocks(%{{.+}}, %{{.+}}, %{{.+}}) in (%{{.+}} = %c2, %{{.+}} = %[[S]], %{{.+}} = %c1) threads(%{{.+}}, %{{.+}}, %{{.+}}) in (%{{.+}} = %c128, %{{.+}} = %c1, %{{.+}} = %c1)
// CHECK:           arith.cmpi ult
// CHECK:           scf.if
// CHECK:             memref.load
// CHECK:             math.exp
// CHECK:             memref.store
// CHECK:           gpu.terminator
// CHECK-NOT:     memref.load
// CHECK:         return
func.func @rows(%x: memref<1x?x256xf32>, %y: memref<1x?x256xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c256 = arith.constant 256 : index
  %s = memref.dim %x, %c1 : memref<1x?x256xf32>
  scf.parallel (%i, %j, %k) = (%c0, %c0, %c0) to (%c1, %s, %c256) step (%c1, %c1, %c1) {
    %v = memref.load %x[%i, %j, %k] : memref<1x?x256xf32>
    %e = math.exp %v : f32
    memref.store %e, %y[%i, %j, %k] : memref<1x?x256xf32>
  }
  return
}

// A short innermost dimension (32) leaves threads for the next one: 4 x 32 threads per
// block, the dynamic dimension tiled by 4.
// CHECK-LABEL: func.func @heads
// CHECK:         gpu.launch blocks({{.+}}) in (%{{.+}} = %c1, %{{.+}} = %{{.+}}, %{{.+}} = %c8) threads({{.+}}) in (%{{.+}} = %c32, %{{.+}} = %c4, %{{.+}} = %c1)
func.func @heads(%x: memref<8x?x32xf32>, %y: memref<8x?x32xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c32 = arith.constant 32 : index
  %s = memref.dim %x, %c1 : memref<8x?x32xf32>
  scf.parallel (%h, %t, %d) = (%c0, %c0, %c0) to (%c8, %s, %c32) step (%c1, %c1, %c1) {
    %v = memref.load %x[%h, %t, %d] : memref<8x?x32xf32>
    memref.store %v, %y[%h, %t, %d] : memref<8x?x32xf32>
  }
  return
}

// A dynamic dimension third from the inside gets at most 64 threads (thread z).
// CHECK-LABEL: func.func @deep
// CHECK:         gpu.launch blocks({{.+}}) threads({{.+}}) in (%{{.+}} = %c1, %{{.+}} = %c1, %{{.+}} = %c64)
func.func @deep(%x: memref<?x1x1xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %f = arith.constant 0.0 : f32
  %s = memref.dim %x, %c0 : memref<?x1x1xf32>
  scf.parallel (%i, %j, %k) = (%c0, %c0, %c0) to (%s, %c1, %c1) step (%c1, %c1, %c1) {
    memref.store %f, %x[%i, %j, %k] : memref<?x1x1xf32>
  }
  return
}

// Four dimensions [1, 8, S, T] (softmax rows of attention): the leading two become one (8 blocks of z), so that S and T keep threads y and x; no loop
// is left in the kernel (gpu-map-parallel-loops maps dimensions 0..2 only and would run
// T sequentially in each thread).
// CHECK-LABEL: func.func @four_dims
// CHECK:         gpu.launch blocks({{.+}}) in (%{{.+}} = %{{.+}}, %{{.+}} = %{{.+}}, %{{.+}} = %c8) threads({{.+}}) in (%{{.+}} = %c128, %{{.+}} = %c1, %{{.+}} = %c1)
// CHECK-NOT:       scf.for
// CHECK:           gpu.terminator
func.func @four_dims(%x: memref<1x8x?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c2 = arith.constant 2 : index
  %c3 = arith.constant 3 : index
  %c8 = arith.constant 8 : index
  %f = arith.constant 0.0 : f32
  %s = memref.dim %x, %c2 : memref<1x8x?x?xf32>
  %t = memref.dim %x, %c3 : memref<1x8x?x?xf32>
  scf.parallel (%a, %h, %i, %j) = (%c0, %c0, %c0, %c0) to (%c1, %c8, %s, %t) step (%c1, %c1, %c1, %c1) {
    memref.store %f, %x[%a, %h, %i, %j] : memref<1x8x?x?xf32>
  }
  return
}

// BAD: threads must be a power of two, got 96
