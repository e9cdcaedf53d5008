// RUN: qforge-opt %s --split-input-file --verify-diagnostics --qf-device-buffers | FileCheck %s

// A buffer a kernel writes, and one returned, are device buffers; the shape operand of a
// reshape, only host code touches it, stays host memory; a contiguous copy is a device copy.
// CHECK-LABEL: func.func @place
// CHECK:         %[[T:.+]] = gpu.alloc () : memref<64xf32>
// CHECK:         %[[SHAPE:.+]] = memref.alloc() : memref<2xindex>
// CHECK:         memref.store %{{.+}}, %[[SHAPE]]
// CHECK:         gpu.launch
// CHECK:         %[[OUT:.+]] = gpu.alloc () : memref<64xf32>
// CHECK:         gpu.memcpy %[[OUT]], %[[T]]
// CHECK:         memref.dealloc %[[SHAPE]]
// CHECK:         gpu.dealloc %[[T]]
// CHECK:         return
func.func @place(%x: memref<64xf32>) -> memref<64xf32> {
  %c0 = arith.constant 0 : index
  %c1 = arith.constant 1 : index
  %c8 = arith.constant 8 : index
  %c64 = arith.constant 64 : index
  %t = memref.alloc() : memref<64xf32>
  %shape = memref.alloc() : memref<2xindex>
  memref.store %c8, %shape[%c0] : memref<2xindex>
  memref.store %c8, %shape[%c1] : memref<2xindex>
  %r = memref.reshape %t(%shape) : (memref<64xf32>, memref<2xindex>) -> memref<8x8xf32>
  gpu.launch blocks(%bx, %by, %bz) in (%gx = %c1, %gy = %c1, %gz = %c1)
             threads(%tx, %ty, %tz) in (%sx = %c8, %sy = %c8, %sz = %c1) {
    %v = memref.load %x[%tx] : memref<64xf32>
    memref.store %v, %r[%tx, %ty] : memref<8x8xf32>
    gpu.terminator
  }
  %out = memref.alloc() : memref<64xf32>
  memref.copy %t, %out : memref<64xf32> to memref<64xf32>
  memref.dealloc %shape : memref<2xindex>
  memref.dealloc %t : memref<64xf32>
  return %out : memref<64xf32>
}

// -----

// A strided copy would become one flat copy from the base pointer: refused.
func.func @strided(%x: memref<4x8xf32>, %y: memref<4x4xf32>) {
  %v = memref.subview %x[0, 0] [4, 4] [1, 1] : memref<4x8xf32> to memref<4x4xf32, strided<[8, 1]>>
  // expected-error @+1 {{between strided buffers has no device copy}}
  memref.copy %v, %y : memref<4x4xf32, strided<[8, 1]>> to memref<4x4xf32>
  return
}
