// RUN: qforge-opt %s -split-input-file --pass-pipeline='builtin.module(func.func(qf-warp-reductions,canonicalize,cse))' | FileCheck %s
// RUN: qforge-opt %s -split-input-file --pass-pipeline='builtin.module(func.func(qf-warp-reductions{emulate=true},canonicalize,cse))' | FileCheck %s --check-prefix=EMU
// IR shape only; the sums themselves (lane order, butterfly, identities, bit for bit) are
// checked by test/e2e/check_warp_reductions.py in cuda-reductions.test.

// A reduction over a run-time number of terms: a lane dimension of 32 innermost; lane l
// starts at term l, steps by 32 and sums from -0.0 in a register; the butterfly
// (offsets 16..1); lane 0 adds the total into the output.
// CHECK-LABEL: func.func @row_sum_of_squares
// CHECK-DAG:     %[[NZ:.+]] = arith.constant -0.000000e+00 : f32
// CHECK-DAG:     %[[C32:.+]] = arith.constant 32 : index
// CHECK:         scf.parallel (%[[I:.+]], %[[LANE:.+]]) = (%{{.+}}, %{{.+}}) to (%{{.+}}, %[[C32]])
// CHECK:           %[[P:.+]] = scf.for %[[K:.+]] = %[[LANE]] to %{{.+}} step %[[C32]] iter_args(%[[ACC:.+]] = %[[NZ]]) -> (f32)
// CHECK:             %[[X:.+]] = memref.load %arg0[%[[I]], %[[K]]]
// CHECK:             %[[SQ:.+]] = arith.mulf %[[X]], %[[X]]
// CHECK:             %[[S:.+]] = arith.addf %[[SQ]], %[[ACC]]
// CHECK:             scf.yield %[[S]]
// CHECK:           %[[R16:.+]], %{{.+}} = gpu.shuffle xor %[[P]], %c16_i32, %c32_i32
// CHECK:           %[[V16:.+]] = arith.addf %[[R16]], %[[P]]
// CHECK:           gpu.shuffle xor %[[V16]], %c8_i32, %c32_i32
// CHECK:           gpu.shuffle xor %{{.+}}, %c4_i32, %c32_i32
// CHECK:           gpu.shuffle xor %{{.+}}, %c2_i32, %c32_i32
// CHECK:           %[[R1:.+]], %{{.+}} = gpu.shuffle xor %{{.+}}, %c1_i32, %c32_i32
// CHECK:           %[[T:.+]] = arith.addf %[[R1]]
// CHECK:           %[[FIRST:.+]] = arith.cmpi eq, %[[LANE]], %{{.+}}
// CHECK:           scf.if %[[FIRST]]
// CHECK:             %[[O:.+]] = memref.load %arg1[%[[I]]]
// CHECK:             %[[N:.+]] = arith.addf %[[T]], %[[O]]
// CHECK:             memref.store %[[N]], %arg1[%[[I]]]
// The CPU emulation: the same lanes in turn, the butterfly on a vector of their values.
// EMU-LABEL: func.func @row_sum_of_squares
// EMU:         scf.parallel (%[[I:.+]]) =
// EMU:           %[[PARTS:.+]] = memref.alloc() : memref<32xf32>
// EMU:           scf.for %[[LANE:.+]] = %{{.+}} to %c32 step
// EMU:             %[[P:.+]] = scf.for %{{.+}} = %[[LANE]] to %{{.+}} step %c32 iter_args
// EMU:             memref.store %[[P]], %[[PARTS]][%[[LANE]]]
// EMU:           %[[V:.+]] = vector.load %[[PARTS]]
// EMU:           vector.shuffle %[[V]], %[[V]] [16, 17, {{.*}}, 15] : vector<32xf32>, vector<32xf32>
// EMU-COUNT-4:   vector.shuffle
// EMU:           %[[T:.+]] = vector.extract %{{.+}}[0]
// EMU:           %[[O:.+]] = memref.load %arg1[%[[I]]]
// EMU:           arith.addf %[[T]], %[[O]]
func.func @row_sum_of_squares(%in: memref<?x?xf32>, %out: memref<?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %m = memref.dim %in, %c0 : memref<?x?xf32>
  %k = memref.dim %in, %c1 : memref<?x?xf32>
  scf.parallel (%i) = (%c0) to (%m) step (%c1) {
    scf.for %j = %c0 to %k step %c1 {
      %x = memref.load %in[%i, %j] : memref<?x?xf32>
      %sq = arith.mulf %x, %x : f32
      %a = memref.load %out[%i] : memref<?xf32>
      %s = arith.addf %sq, %a : f32
      memref.store %s, %out[%i] : memref<?xf32>
    }
    scf.reduce
  }
  return
}

// -----

// A running maximum over 64 terms (the default min-warp-extent): the identity is -inf,
// the butterfly combines with maximumf.
// CHECK-LABEL: func.func @row_max
// CHECK-DAG:     %[[NINF:.+]] = arith.constant 0xFF800000 : f32
// CHECK:         scf.for {{.+}} iter_args(%{{.+}} = %[[NINF]])
// CHECK:           arith.maximumf
// CHECK-COUNT-5: arith.maximumf
// CHECK:         scf.if
// CHECK:           arith.maximumf
func.func @row_max(%in: memref<8x64xf32>, %out: memref<8xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c64 = arith.constant 64 : index
  scf.parallel (%i) = (%c0) to (%c8) step (%c1) {
    scf.for %j = %c0 to %c64 step %c1 {
      %x = memref.load %in[%i, %j] : memref<8x64xf32>
      %a = memref.load %out[%i] : memref<8xf32>
      %m = arith.maximumf %x, %a : f32
      memref.store %m, %out[%i] : memref<8xf32>
    }
    scf.reduce
  }
  return
}

// -----

// 32 terms (static, below min-warp-extent): one thread per output, the accumulator in a
// register from the output's value, in the original order; the same on both targets.
// CHECK-LABEL: func.func @short_dot
// CHECK-NOT:     gpu.shuffle
// CHECK:         scf.parallel (%[[I:.+]], %[[J:.+]]) =
// CHECK:           %[[INIT:.+]] = memref.load %arg2[%[[I]], %[[J]]]
// CHECK:           %[[S:.+]] = scf.for %{{.+}} = %c0 to %c32 step %c1 iter_args(%{{.+}} = %[[INIT]])
// CHECK:           memref.store %[[S]], %arg2[%[[I]], %[[J]]]
// EMU-LABEL: func.func @short_dot
// EMU-NOT:     vector.shuffle
// EMU:         scf.for %{{.+}} = %c0 to %c32 step %c1 iter_args
func.func @short_dot(%a: memref<4x32xf32>, %b: memref<32x16xf32>, %c: memref<4x16xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c4 = arith.constant 4 : index
  %c16 = arith.constant 16 : index
  %c32 = arith.constant 32 : index
  scf.parallel (%i, %j) = (%c0, %c0) to (%c4, %c16) step (%c1, %c1) {
    scf.for %k = %c0 to %c32 step %c1 {
      %x = memref.load %a[%i, %k] : memref<4x32xf32>
      %y = memref.load %b[%k, %j] : memref<32x16xf32>
      %acc = memref.load %c[%i, %j] : memref<4x16xf32>
      %p = arith.mulf %x, %y : f32
      %s = arith.addf %acc, %p : f32
      memref.store %s, %c[%i, %j] : memref<4x16xf32>
    }
    scf.reduce
  }
  return
}

// -----

// Not a reduction the pass takes: the terms read the output (a prefix sum), or the
// accumulator is stored at an index that moves with the loop. Left as they are.
// CHECK-LABEL: func.func @not_reductions
// CHECK-NOT:     gpu.shuffle
// CHECK-NOT:     iter_args
// CHECK:         memref.load %arg1[%{{.+}}]
// CHECK:         memref.load %arg1[%{{.+}}]
// CHECK:         memref.store
// CHECK-NOT:     iter_args
// CHECK:         memref.store
func.func @not_reductions(%in: memref<?x?xf32>, %out: memref<?xf32>, %out2: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %m = memref.dim %in, %c0 : memref<?x?xf32>
  %k = memref.dim %in, %c1 : memref<?x?xf32>
  scf.parallel (%i) = (%c0) to (%m) step (%c1) {
    scf.for %j = %c1 to %k step %c1 {
      %jm = arith.subi %j, %c1 : index
      %prev = memref.load %out[%jm] : memref<?xf32>
      %a = memref.load %out[%i] : memref<?xf32>
      %s = arith.addf %prev, %a : f32
      memref.store %s, %out[%i] : memref<?xf32>
    }
    scf.reduce
  }
  scf.parallel (%i) = (%c0) to (%m) step (%c1) {
    scf.for %j = %c0 to %k step %c1 {
      %x = memref.load %in[%i, %j] : memref<?x?xf32>
      %a = memref.load %out2[%i, %j] : memref<?x?xf32>
      %s = arith.addf %x, %a : f32
      memref.store %s, %out2[%i, %j] : memref<?x?xf32>
    }
    scf.reduce
  }
  return
}

// -----

// A matmul with a run-time K: the terms of B move in its first index, so lanes would each
// read their own row; one thread per output (neighbouring n read neighbouring addresses),
// the accumulator in a register.
// CHECK-LABEL: func.func @matmul_columns
// CHECK-NOT:     gpu.shuffle
// CHECK:         scf.parallel (%[[M:.+]], %[[N:.+]]) =
// CHECK:           %[[INIT:.+]] = memref.load %arg2[%[[M]], %[[N]]]
// CHECK:           scf.for %[[K:.+]] = %c0 to %{{.+}} step %c1 iter_args(%{{.+}} = %[[INIT]])
// CHECK:             memref.load %arg1[%[[K]], %[[N]]]
// EMU-LABEL: func.func @matmul_columns
// EMU-NOT:     vector.shuffle
// EMU:         iter_args
func.func @matmul_columns(%a: memref<?x?xf32>, %b: memref<?x?xf32>, %c: memref<?x?xf32>) {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %m = memref.dim %a, %c0 : memref<?x?xf32>
  %k = memref.dim %a, %c1 : memref<?x?xf32>
  %n = memref.dim %b, %c1 : memref<?x?xf32>
  scf.parallel (%i, %j) = (%c0, %c0) to (%m, %n) step (%c1, %c1) {
    scf.for %l = %c0 to %k step %c1 {
      %x = memref.load %a[%i, %l] : memref<?x?xf32>
      %y = memref.load %b[%l, %j] : memref<?x?xf32>
      %acc = memref.load %c[%i, %j] : memref<?x?xf32>
      %p = arith.mulf %x, %y : f32
      %s = arith.addf %acc, %p : f32
      memref.store %s, %c[%i, %j] : memref<?x?xf32>
    }
    scf.reduce
  }
  return
}
