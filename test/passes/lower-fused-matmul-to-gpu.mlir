// RUN: qforge-opt %s --qf-lower-fused-matmul-to-gpu --qf-device-buffers --canonicalize --cse | FileCheck %s

// A 3-bit affine fused matmul becomes a launch of the generic kernel: one thread per
// output element, 128 threads per block along the output channels (300 → 3 blocks), one
// block row per input row. Host allocations and copies become GPU ones
// (qf-device-buffers).
// CHECK:       module attributes {gpu.container_module}
// CHECK-LABEL: func.func @host
// CHECK:         %[[OUT:.+]] = gpu.alloc () : memref<2x300xf32>
// CHECK:         gpu.launch_func @qf_kernels::@fused_matmul blocks in (%c3, %c2, %c1) threads in (%c128, %c1, %c1) args(%arg0 : memref<2x64xf32>, %arg1 : memref<300x6xi32>, %arg2 : memref<300x2xf32>, %[[OUT]] : memref<2x300xf32>)
// CHECK:         gpu.memcpy %arg3, %[[OUT]]
// CHECK:         gpu.dealloc %[[OUT]]
// CHECK:       func.func @host_gemv
// CHECK:         gpu.launch_func @qf_kernels::@fused_gemv blocks in (%c38, %c1, %c1) threads in (%c256, %c1, %c1)
// CHECK:       gpu.module @qf_kernels
// CHECK:         gpu.func @fused_matmul(%{{.+}}: memref<2x64xf32>, %{{.+}}: memref<300x6xi32>, %{{.+}}: memref<300x2xf32>, %{{.+}}: memref<2x300xf32>) kernel
// CHECK:           gpu.block_id x
// CHECK:           gpu.thread_id x
// CHECK:           %[[IN:.+]] = arith.cmpi ult, %{{.+}}, %c300
// CHECK:           scf.if %[[IN]]
// CHECK:             memref.store
// CHECK:           gpu.return
// (the warp GEMV's checks follow @host_gemv below)
func.func @host(%x: memref<2x64xf32>, %c: memref<300x6xi32>, %s: memref<300x2xf32>, %y: memref<2x300xf32>) {
  %tmp = memref.alloc() : memref<2x300xf32>
  qf.fused_matmul #qf.scheme<affine, bits = 3, group = 32, symmetric> %x, %c scales(%s) outs(%tmp) : (memref<2x64xf32>, memref<300x6xi32>, memref<300x2xf32>, memref<2x300xf32>) -> ()
  memref.copy %tmp, %y : memref<2x300xf32> to memref<2x300xf32>
  memref.dealloc %tmp : memref<2x300xf32>
  return
}

// A 4-bit one becomes the warp GEMV: 8 warps (one output channel each) per block
// (300 → 38 blocks), a tile of 4 rows of x per block (2 rows → 1 block row) staged in
// shared memory as f16, 128-bit code loads, lop3 decodes, f16x2 fused multiply-adds, a
// shuffle butterfly; rows past the end of x are neither read nor stored.
// CHECK:       gpu.func @fused_gemv({{.*}}) workgroup(%[[XS:.+]] : memref<256xf16, #gpu.address_space<workgroup>>) kernel
// CHECK:           arith.truncf {{.*}} : f32 to f16
// CHECK:           gpu.barrier
// CHECK:           vector.load {{.*}} {alignment = 16 : i64} : memref<300x8xi32>, vector<4xi32>
// CHECK:           llvm.inline_asm asm_dialect = att "lop3.b32 $0, $1, 0x000f000f, 0x64006400, 0xEA;", "=r,r"
// CHECK:           llvm.intr.fma({{.*}}) : (vector<2xf16>, vector<2xf16>, vector<2xf16>) -> vector<2xf16>
// CHECK-COUNT-5:   gpu.shuffle  xor
func.func @host_gemv(%x: memref<2x64xf32>, %c: memref<300x8xi32>, %s: memref<300x2xf32>, %y: memref<2x300xf32>) {
  qf.fused_matmul #qf.scheme<affine, bits = 4, group = 32, symmetric> %x, %c scales(%s) outs(%y) : (memref<2x64xf32>, memref<300x8xi32>, memref<300x2xf32>, memref<2x300xf32>) -> ()
  return
}
