// RUN: qforge-opt %s --qf-lower-fused-matmul-to-gpu --qf-device-buffers --canonicalize --cse | FileCheck %s

// The fused matmul becomes a launch of a generated kernel: one thread per output element,
// 128 threads per block along the output channels (300 → 3 blocks), one block row per input
// row. Host allocations and copies become GPU ones (qf-device-buffers).
// CHECK:       module attributes {gpu.container_module}
// CHECK-LABEL: func.func @host
// CHECK:         %[[OUT:.+]] = gpu.alloc () : memref<2x300xf32>
// CHECK:         gpu.launch_func @qf_kernels::@fused_matmul blocks in (%c3, %c2, %c1) threads in (%c128, %c1, %c1) args(%arg0 : memref<2x64xf32>, %arg1 : memref<300x8xi32>, %arg2 : memref<300x2xf32>, %[[OUT]] : memref<2x300xf32>)
// CHECK:         gpu.memcpy %arg3, %[[OUT]]
// CHECK:         gpu.dealloc %[[OUT]]
// CHECK:       gpu.module @qf_kernels
// CHECK:         gpu.func @fused_matmul(%{{.+}}: memref<2x64xf32>, %{{.+}}: memref<300x8xi32>, %{{.+}}: memref<300x2xf32>, %{{.+}}: memref<2x300xf32>) kernel
// CHECK:           gpu.block_id x
// CHECK:           gpu.thread_id x
// CHECK:           %[[IN:.+]] = arith.cmpi ult, %{{.+}}, %c300
// CHECK:           scf.if %[[IN]]
// CHECK:             memref.store
// CHECK:           gpu.return
func.func @host(%x: memref<2x64xf32>, %c: memref<300x8xi32>, %s: memref<300x2xf32>, %y: memref<2x300xf32>) {
  %tmp = memref.alloc() : memref<2x300xf32>
  qf.fused_matmul #qf.scheme<affine, bits = 4, group = 32, symmetric> %x, %c scales(%s) outs(%tmp) : (memref<2x64xf32>, memref<300x8xi32>, memref<300x2xf32>, memref<2x300xf32>) -> ()
  memref.copy %tmp, %y : memref<2x300xf32> to memref<2x300xf32>
  memref.dealloc %tmp : memref<2x300xf32>
  return
}
