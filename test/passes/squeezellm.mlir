// RUN: qforge-opt %s --pass-pipeline='builtin.module(func.func(qf-split-outliers{outliers=12.5 sensitivity=none}, qf-squeezellm{bits=2 sensitivity=none}))' | FileCheck %s
// RUN: qforge-opt %s --pass-pipeline='builtin.module(func.func(qf-split-outliers{outliers=12.5 sensitivity=none}))' | FileCheck %s --check-prefix=SPLIT
// RUN: qforge-opt %s --pass-pipeline='builtin.module(func.func(qf-split-outliers{outliers=12.5 sensitivity=none}, qf-squeezellm{bits=2 sensitivity=none table=f16}))' | FileCheck %s --check-prefix=HALF
// RUN: not qforge-opt %s --pass-pipeline='builtin.module(func.func(qf-squeezellm{bits=3 sensitivity=xtx}))' 2>&1 | FileCheck %s --check-prefix=NOCALIB
// RUN: not qforge-opt %s --pass-pipeline='builtin.module(func.func(qf-squeezellm{bits=3 solver=fast}))' 2>&1 | FileCheck %s --check-prefix=SOLVER
// RUN: not qforge-opt %s --pass-pipeline='builtin.module(func.func(qf-split-outliers{sensitive=1 sensitivity=none}))' 2>&1 | FileCheck %s --check-prefix=SENSITIVE

// One output channel, K = 8: W[:, 0] = [0, 0.1, 0.2, 1, 1.1, -2, 9, 0.15].
//
// Split: the quartiles (sorted values at indices 1 and 5 of 8) are q1 = 0 and q3 = 1,
// so the fence is 1 + r. 12.5% of 8 weights is one outlier: r solves to 1, where only
// |9| > 2. The remainder has 0 at k = 6, and the CSR holds row_ptr [0, 1], col [6],
// value 9.
//
// k-means with 4 entries over the 7 other weights (k = 6 has weight 0): the optimum is
// {-2}, {0}, {0.1, 0.15, 0.2}, {1, 1.1} (sum of squares 0.01; {0, 0.1}, {0.15, 0.2}
// gives 0.01125), so lut = [-2, 0, 0.15, 1.05] and the codes are [1, 2, 2, 3, 3, 0, 1, 2]
// (k = 6 decodes to 0), packed 2 bits each LSB first: 0x93E9. The stored outlier is
// 9 - 0 = 9 (0x41100000).

// SPLIT-LABEL: func.func @one_row
// SPLIT:         "tosa.const"() <{values = dense_resource<w> : tensor<8x1xf32>}> {qf.name = "w", qf.outliers = {col_idx = dense_resource<w.outliers.col_idx> : tensor<1xi32>, row_ptr = dense_resource<w.outliers.row_ptr> : tensor<2xi32>, values = dense_resource<w.outliers.values> : tensor<1xf32>}}
// SPLIT:       w: "0x0400000000000000CDCCCC3DCDCC4C3E0000803FCDCC8C3F000000C0000000009A99193E"

// CHECK-LABEL: func.func @one_row
// CHECK:         %[[DQ:.+]] = qf.dequantize #qf.scheme<codebook, bits = 2> %{{.+}} lut(%{{.+}} : tensor<1x4xf32>) {qf.layer = "w", qf.outlier_count = 1 : i64, qf.weight_error = {{.+}}} : tensor<1x1xi32> -> tensor<1x8xf32>
// CHECK:         %[[W:.+]] = qf.sparse_outliers %[[DQ]], %{{.+}}, %{{.+}}, %{{.+}} : tensor<1x8xf32>, tensor<2xi32>, tensor<1xi32>, tensor<1xf32>
// CHECK:         tosa.transpose %[[W]]
// CHECK-DAG:   w.codes: "0x04000000E9930000"
// CHECK-DAG:   w.row_ptr: "0x040000000000000001000000"
// CHECK-DAG:   w.col_idx: "0x0400000006000000"
// CHECK-DAG:   w.values: "0x0400000000001041"

// With table=f16 the entries round to the nearest f16 values: -2 (0xC000), 0, 0.15 →
// 0.1500244 (0x30CD), 1.05 → 1.0498047 (0x3C33); the codes are the same.
// HALF:        qf.dequantize #qf.scheme<codebook, bits = 2> %{{.+}} lut(%{{.+}} : tensor<1x4xf16>)
// HALF-DAG:    w.codes: "0x04000000E9930000"
// HALF-DAG:    w.lut: "0x0200000000C00000CD30333C"
// HALF-DAG:    w.values: "0x0400000000001041"

// NOCALIB: layer 'w' has no calibration statistics
// SOLVER: unknown solver 'fast' (exact or lloyd)
// SENSITIVE: sensitive values need a sensitivity (fisher or xtx)
func.func @one_row(%x: tensor<1x1x8xf32>) -> tensor<1x1x1xf32> {
  %w = "tosa.const"() {values = dense<[[0.0], [0.1], [0.2], [1.0], [1.1], [-2.0], [9.0], [0.15]]> : tensor<8x1xf32>, qf.name = "w"} : () -> tensor<8x1xf32>
  %s = tosa.const_shape {values = dense<[1, 8, 1]> : tensor<3xindex>} : () -> !tosa.shape<3>
  %w3 = tosa.reshape %w, %s : (tensor<8x1xf32>, !tosa.shape<3>) -> tensor<1x8x1xf32>
  %zp = "tosa.const"() {values = dense<0.0> : tensor<1xf32>} : () -> tensor<1xf32>
  %y = tosa.matmul %x, %w3, %zp, %zp : (tensor<1x1x8xf32>, tensor<1x8x1xf32>, tensor<1xf32>, tensor<1xf32>) -> tensor<1x1x1xf32>
  return %y : tensor<1x1x1xf32>
}
