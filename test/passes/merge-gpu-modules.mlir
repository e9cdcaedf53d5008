// RUN: qforge-opt %s --qf-merge-gpu-modules | FileCheck %s

// Outlined kernels move into @qf_kernels (a clashing name gets a suffix); launches follow.
// CHECK-LABEL: func.func @host
// CHECK:         gpu.launch_func @qf_kernels::@fused_matmul
// CHECK:         gpu.launch_func @qf_kernels::@host_kernel
// CHECK:         gpu.launch_func @qf_kernels::@fused_matmul_0
// CHECK:       gpu.module @qf_kernels
// CHECK-DAG:     gpu.func @fused_matmul() kernel
// CHECK-DAG:     gpu.func @host_kernel() kernel
// CHECK-DAG:     gpu.func @fused_matmul_0() kernel
// CHECK-NOT:   gpu.module
module attributes {gpu.container_module} {
  func.func @host() {
    %c1 = arith.constant 1 : index
    gpu.launch_func @qf_kernels::@fused_matmul blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1)
    gpu.launch_func @host_kernel::@host_kernel blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1)
    gpu.launch_func @other::@fused_matmul blocks in (%c1, %c1, %c1) threads in (%c1, %c1, %c1)
    return
  }
  gpu.module @host_kernel {
    gpu.func @host_kernel() kernel {
      gpu.return
    }
  }
  gpu.module @qf_kernels {
    gpu.func @fused_matmul() kernel {
      gpu.return
    }
  }
  gpu.module @other {
    gpu.func @fused_matmul() kernel {
      gpu.return
    }
  }
}
