// RUN: qforge-opt %s -split-input-file -verify-diagnostics
// One case per verifier message of the qf dialect.

func.func @bad_bits(%c: tensor<8x8xi32>, %s: tensor<8x2xf32>) -> tensor<8x64xf32> {
  // expected-error @+1 {{bits must be 2, 3, 4 or 8, got 5}}
  %w = qf.dequantize #qf.scheme<affine, bits = 5, group = 32, symmetric> %c scales(%s : tensor<8x2xf32>) : tensor<8x8xi32> -> tensor<8x64xf32>
  return %w : tensor<8x64xf32>
}

// -----

func.func @bad_group(%c: tensor<8x8xi32>, %s: tensor<8x2xf32>) -> tensor<8x64xf32> {
  // expected-error @+1 {{group size must be positive, got -4}}
  %w = qf.dequantize #qf.scheme<affine, bits = 4, group = -4, symmetric> %c scales(%s : tensor<8x2xf32>) : tensor<8x8xi32> -> tensor<8x64xf32>
  return %w : tensor<8x64xf32>
}

// -----

// expected-error @+1 {{expected 'group = N', 'per_channel' or 'per_tensor'}}
func.func @bad_granularity() -> () attributes {s = #qf.scheme<affine, bits = 4, per_row, symmetric>} {
  return
}

// -----

// expected-error @+1 {{expected 'affine' or 'codebook', got 'lattice'}}
func.func @bad_kind() -> () attributes {s = #qf.scheme<lattice, bits = 4>} {
  return
}

// -----

func.func @bad_words(%c: tensor<1024x64xi32>, %s: tensor<1024x8xf32>) -> tensor<1024x1024xf32> {
  // expected-error @+1 {{'qf.dequantize' op expects 128 words per row for 1024 codes of 4 bits, got 64}}
  %w = qf.dequantize #qf.scheme<affine, bits = 4, group = 128, symmetric> %c scales(%s : tensor<1024x8xf32>) : tensor<1024x64xi32> -> tensor<1024x1024xf32>
  return %w : tensor<1024x1024xf32>
}

// -----

func.func @bad_group_count(%c: tensor<16x128xi32>, %s: tensor<16x7xf32>) -> tensor<16x1024xf32> {
  // expected-error @+1 {{'qf.dequantize' op expects 8 scales for 1024 columns in groups of 128, got 7}}
  %w = qf.dequantize #qf.scheme<affine, bits = 4, group = 128, symmetric> %c scales(%s : tensor<16x7xf32>) : tensor<16x128xi32> -> tensor<16x1024xf32>
  return %w : tensor<16x1024xf32>
}

// -----

func.func @bad_per_channel(%c: tensor<16x2xi32>, %s: tensor<16x2xf32>) -> tensor<16x16xf32> {
  // expected-error @+1 {{'qf.dequantize' op expects 1 scales for 16 columns per channel, got 2}}
  %w = qf.dequantize #qf.scheme<affine, bits = 4, per_channel, symmetric> %c scales(%s : tensor<16x2xf32>) : tensor<16x2xi32> -> tensor<16x16xf32>
  return %w : tensor<16x16xf32>
}

// -----

func.func @bad_per_tensor_rows(%c: tensor<16x2xi32>, %s: tensor<16x1xf32>) -> tensor<16x16xf32> {
  // expected-error @+1 {{'qf.dequantize' op expects 1 rows of scales, got 16}}
  %w = qf.dequantize #qf.scheme<affine, bits = 4, per_tensor, symmetric> %c scales(%s : tensor<16x1xf32>) : tensor<16x2xi32> -> tensor<16x16xf32>
  return %w : tensor<16x16xf32>
}

// -----

func.func @bad_code_rows(%c: tensor<15x2xi32>, %s: tensor<16x1xf32>) -> tensor<16x16xf32> {
  // expected-error @+1 {{'qf.dequantize' op expects 16 rows of codes, got 15}}
  %w = qf.dequantize #qf.scheme<affine, bits = 4, per_channel, symmetric> %c scales(%s : tensor<16x1xf32>) : tensor<15x2xi32> -> tensor<16x16xf32>
  return %w : tensor<16x16xf32>
}

// -----

func.func @bad_code_rank(%c: tensor<32xi32>, %s: tensor<16x1xf32>) -> tensor<16x16xf32> {
  // expected-error @+1 {{'qf.dequantize' op expects codes of rank 2 (rows x packed words), got rank 1}}
  %w = qf.dequantize #qf.scheme<affine, bits = 4, per_channel, symmetric> %c scales(%s : tensor<16x1xf32>) : tensor<32xi32> -> tensor<16x16xf32>
  return %w : tensor<16x16xf32>
}

// -----

func.func @bad_weight_rank(%c: tensor<16x2xi32>, %s: tensor<16x1xf32>) -> tensor<1x16x16xf32> {
  // expected-error @+1 {{'qf.dequantize' op expects a weight of rank 2 (rows x columns), got rank 3}}
  %w = qf.dequantize #qf.scheme<affine, bits = 4, per_channel, symmetric> %c scales(%s : tensor<16x1xf32>) : tensor<16x2xi32> -> tensor<1x16x16xf32>
  return %w : tensor<1x16x16xf32>
}

// -----

func.func @missing_scales(%c: tensor<16x2xi32>) -> tensor<16x16xf32> {
  // expected-error @+1 {{'qf.dequantize' op an affine scheme needs scales}}
  %w = qf.dequantize #qf.scheme<affine, bits = 4, per_channel, symmetric> %c : tensor<16x2xi32> -> tensor<16x16xf32>
  return %w : tensor<16x16xf32>
}

// -----

func.func @scales_rank(%c: tensor<16x2xi32>, %s: tensor<16xf32>) -> tensor<16x16xf32> {
  // expected-error @+1 {{'qf.dequantize' op expects scales of rank 2 (rows x groups), got rank 1}}
  %w = qf.dequantize #qf.scheme<affine, bits = 4, per_channel, symmetric> %c scales(%s : tensor<16xf32>) : tensor<16x2xi32> -> tensor<16x16xf32>
  return %w : tensor<16x16xf32>
}

// -----

func.func @affine_with_lut(%c: tensor<16x2xi32>, %s: tensor<16x1xf32>, %l: tensor<16x16xf32>) -> tensor<16x16xf32> {
  // expected-error @+1 {{'qf.dequantize' op an affine scheme takes no lut}}
  %w = qf.dequantize #qf.scheme<affine, bits = 4, per_channel, symmetric> %c scales(%s : tensor<16x1xf32>) lut(%l : tensor<16x16xf32>) : tensor<16x2xi32> -> tensor<16x16xf32>
  return %w : tensor<16x16xf32>
}

// -----

func.func @symmetric_with_zero_points(%c: tensor<16x2xi32>, %s: tensor<16x1xf32>, %z: tensor<16x1xi8>) -> tensor<16x16xf32> {
  // expected-error @+1 {{'qf.dequantize' op a symmetric scheme takes no zero points}}
  %w = qf.dequantize #qf.scheme<affine, bits = 4, per_channel, symmetric> %c scales(%s : tensor<16x1xf32>) zero_points(%z : tensor<16x1xi8>) : tensor<16x2xi32> -> tensor<16x16xf32>
  return %w : tensor<16x16xf32>
}

// -----

func.func @missing_zero_points(%c: tensor<16x2xi32>, %s: tensor<16x1xf32>) -> tensor<16x16xf32> {
  // expected-error @+1 {{'qf.dequantize' op a scheme with zero points needs zero_points}}
  %w = qf.dequantize #qf.scheme<affine, bits = 4, per_channel, zero_point> %c scales(%s : tensor<16x1xf32>) : tensor<16x2xi32> -> tensor<16x16xf32>
  return %w : tensor<16x16xf32>
}

// -----

func.func @zero_point_shape(%c: tensor<16x2xi32>, %s: tensor<16x1xf32>, %z: tensor<16x2xi8>) -> tensor<16x16xf32> {
  // expected-error @+1 {{'qf.dequantize' op expects zero points shaped like the scales (16x1), got 16x2}}
  %w = qf.dequantize #qf.scheme<affine, bits = 4, per_channel, zero_point> %c scales(%s : tensor<16x1xf32>) zero_points(%z : tensor<16x2xi8>) : tensor<16x2xi32> -> tensor<16x16xf32>
  return %w : tensor<16x16xf32>
}

// -----

func.func @codebook_without_lut(%c: tensor<16x2xi32>) -> tensor<16x16xf32> {
  // expected-error @+1 {{'qf.dequantize' op a codebook scheme needs a lut}}
  %w = qf.dequantize #qf.scheme<codebook, bits = 4> %c : tensor<16x2xi32> -> tensor<16x16xf32>
  return %w : tensor<16x16xf32>
}

// -----

func.func @codebook_with_scales(%c: tensor<16x2xi32>, %s: tensor<16x1xf32>, %l: tensor<16x16xf32>) -> tensor<16x16xf32> {
  // expected-error @+1 {{'qf.dequantize' op a codebook scheme takes no scales or zero points}}
  %w = qf.dequantize #qf.scheme<codebook, bits = 4> %c scales(%s : tensor<16x1xf32>) lut(%l : tensor<16x16xf32>) : tensor<16x2xi32> -> tensor<16x16xf32>
  return %w : tensor<16x16xf32>
}

// -----

func.func @lut_shape(%c: tensor<16x2xi32>, %l: tensor<16x8xf32>) -> tensor<16x16xf32> {
  // expected-error @+1 {{'qf.dequantize' op expects a lut of 16x16 (rows x 2^bits), got 16x8}}
  %w = qf.dequantize #qf.scheme<codebook, bits = 4> %c lut(%l : tensor<16x8xf32>) : tensor<16x2xi32> -> tensor<16x16xf32>
  return %w : tensor<16x16xf32>
}

// -----

func.func @row_ptr_count(%w: tensor<4x64xf32>, %rp: tensor<4xi32>, %ci: tensor<2xi32>, %v: tensor<2xf32>) -> tensor<4x64xf32> {
  // expected-error @+1 {{'qf.sparse_outliers' op expects 5 row pointers for 4 rows, got 4}}
  %r = qf.sparse_outliers %w, %rp, %ci, %v : tensor<4x64xf32>, tensor<4xi32>, tensor<2xi32>, tensor<2xf32>
  return %r : tensor<4x64xf32>
}

// -----

func.func @csr_lengths(%w: tensor<4x64xf32>, %rp: tensor<5xi32>, %ci: tensor<2xi32>, %v: tensor<3xf32>) -> tensor<4x64xf32> {
  // expected-error @+1 {{'qf.sparse_outliers' op expects as many column indices as values, got 2 and 3}}
  %r = qf.sparse_outliers %w, %rp, %ci, %v : tensor<4x64xf32>, tensor<5xi32>, tensor<2xi32>, tensor<3xf32>
  return %r : tensor<4x64xf32>
}

// -----

func.func @csr_rank(%w: tensor<4x64xf32>, %rp: tensor<5x1xi32>, %ci: tensor<2xi32>, %v: tensor<2xf32>) -> tensor<4x64xf32> {
  // expected-error @+1 {{'qf.sparse_outliers' op expects 1-D CSR arrays (row_ptr, col_idx, values)}}
  %r = qf.sparse_outliers %w, %rp, %ci, %v : tensor<4x64xf32>, tensor<5x1xi32>, tensor<2xi32>, tensor<2xf32>
  return %r : tensor<4x64xf32>
}

// -----

func.func @row_ptr_start(%w: tensor<4x64xf32>, %ci: tensor<2xi32>, %v: tensor<2xf32>) -> tensor<4x64xf32> {
  %rp = arith.constant dense<[1, 1, 1, 2, 2]> : tensor<5xi32>
  // expected-error @+1 {{'qf.sparse_outliers' op row_ptr must start at 0}}
  %r = qf.sparse_outliers %w, %rp, %ci, %v : tensor<4x64xf32>, tensor<5xi32>, tensor<2xi32>, tensor<2xf32>
  return %r : tensor<4x64xf32>
}

// -----

func.func @row_ptr_decreasing(%w: tensor<4x64xf32>, %ci: tensor<2xi32>, %v: tensor<2xf32>) -> tensor<4x64xf32> {
  %rp = arith.constant dense<[0, 2, 1, 2, 2]> : tensor<5xi32>
  // expected-error @+1 {{'qf.sparse_outliers' op row_ptr decreases at row 1}}
  %r = qf.sparse_outliers %w, %rp, %ci, %v : tensor<4x64xf32>, tensor<5xi32>, tensor<2xi32>, tensor<2xf32>
  return %r : tensor<4x64xf32>
}

// -----

func.func @row_ptr_end(%w: tensor<4x64xf32>, %ci: tensor<2xi32>, %v: tensor<2xf32>) -> tensor<4x64xf32> {
  %rp = arith.constant dense<[0, 1, 1, 2, 3]> : tensor<5xi32>
  // expected-error @+1 {{'qf.sparse_outliers' op row_ptr ends at 3 but there are 2 values}}
  %r = qf.sparse_outliers %w, %rp, %ci, %v : tensor<4x64xf32>, tensor<5xi32>, tensor<2xi32>, tensor<2xf32>
  return %r : tensor<4x64xf32>
}

// -----

func.func @column_out_of_range(%w: tensor<4x64xf32>, %v: tensor<2xf32>) -> tensor<4x64xf32> {
  %rp = arith.constant dense<[0, 1, 1, 2, 2]> : tensor<5xi32>
  %ci = arith.constant dense<[3, 64]> : tensor<2xi32>
  // expected-error @+1 {{'qf.sparse_outliers' op column index 64 at position 1 is outside [0, 64)}}
  %r = qf.sparse_outliers %w, %rp, %ci, %v : tensor<4x64xf32>, tensor<5xi32>, tensor<2xi32>, tensor<2xf32>
  return %r : tensor<4x64xf32>
}

// -----

func.func @sparse_dense_rank(%w: tensor<64xf32>, %rp: tensor<5xi32>, %ci: tensor<2xi32>, %v: tensor<2xf32>) -> tensor<64xf32> {
  // expected-error @+1 {{'qf.sparse_outliers' op expects a dense weight of rank 2, got rank 1}}
  %r = qf.sparse_outliers %w, %rp, %ci, %v : tensor<64xf32>, tensor<5xi32>, tensor<2xi32>, tensor<2xf32>
  return %r : tensor<64xf32>
}

// -----

func.func @fused_mixed(%x: tensor<2x64xf32>, %c: memref<8x8xi32>, %s: tensor<8x2xf32>, %y: tensor<2x8xf32>) -> tensor<2x8xf32> {
  // expected-error @+1 {{'qf.fused_matmul' op expects all operands to be tensors or all to be memrefs}}
  %r = qf.fused_matmul #qf.scheme<affine, bits = 4, group = 32, symmetric> %x, %c scales(%s) outs(%y) : (tensor<2x64xf32>, memref<8x8xi32>, tensor<8x2xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
  return %r : tensor<2x8xf32>
}

// -----

func.func @fused_no_result(%x: tensor<2x64xf32>, %c: tensor<8x8xi32>, %s: tensor<8x2xf32>, %y: tensor<2x8xf32>) {
  // expected-error @+1 {{'qf.fused_matmul' op on tensors returns the destination's type}}
  qf.fused_matmul #qf.scheme<affine, bits = 4, group = 32, symmetric> %x, %c scales(%s) outs(%y) : (tensor<2x64xf32>, tensor<8x8xi32>, tensor<8x2xf32>, tensor<2x8xf32>) -> ()
  return
}

// -----

func.func @fused_result_type(%x: tensor<2x64xf32>, %c: tensor<8x8xi32>, %s: tensor<8x2xf32>, %y: tensor<2x8xf32>) -> tensor<2x8xf16> {
  // expected-error @+1 {{'qf.fused_matmul' op result type must match the destination type}}
  %r = qf.fused_matmul #qf.scheme<affine, bits = 4, group = 32, symmetric> %x, %c scales(%s) outs(%y) : (tensor<2x64xf32>, tensor<8x8xi32>, tensor<8x2xf32>, tensor<2x8xf32>) -> tensor<2x8xf16>
  return %r : tensor<2x8xf16>
}

// -----

func.func @fused_rank(%x: tensor<1x2x64xf32>, %c: tensor<8x8xi32>, %s: tensor<8x2xf32>, %y: tensor<2x8xf32>) -> tensor<2x8xf32> {
  // expected-error @+1 {{'qf.fused_matmul' op expects input and destination of the same rank >= 1, got 3 and 2}}
  %r = qf.fused_matmul #qf.scheme<affine, bits = 4, group = 32, symmetric> %x, %c scales(%s) outs(%y) : (tensor<1x2x64xf32>, tensor<8x8xi32>, tensor<8x2xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
  return %r : tensor<2x8xf32>
}

// -----

func.func @fused_leading_dims(%x: tensor<3x64xf32>, %c: tensor<8x8xi32>, %s: tensor<8x2xf32>, %y: tensor<2x8xf32>) -> tensor<2x8xf32> {
  // expected-error @+1 {{'qf.fused_matmul' op input and destination differ in dimension 0}}
  %r = qf.fused_matmul #qf.scheme<affine, bits = 4, group = 32, symmetric> %x, %c scales(%s) outs(%y) : (tensor<3x64xf32>, tensor<8x8xi32>, tensor<8x2xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
  return %r : tensor<2x8xf32>
}

// -----

func.func @fused_element_types(%x: tensor<2x64xf16>, %c: tensor<8x8xi32>, %s: tensor<8x2xf32>, %y: tensor<2x8xf32>) -> tensor<2x8xf32> {
  // expected-error @+1 {{'qf.fused_matmul' op expects input and destination of the same float type}}
  %r = qf.fused_matmul #qf.scheme<affine, bits = 4, group = 32, symmetric> %x, %c scales(%s) outs(%y) : (tensor<2x64xf16>, tensor<8x8xi32>, tensor<8x2xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
  return %r : tensor<2x8xf32>
}

// -----

func.func @fused_bias(%x: tensor<2x64xf32>, %c: tensor<8x8xi32>, %s: tensor<8x2xf32>, %b: tensor<7xf32>, %y: tensor<2x8xf32>) -> tensor<2x8xf32> {
  // expected-error @+1 {{'qf.fused_matmul' op expects a bias of 8 values, got 7}}
  %r = qf.fused_matmul #qf.scheme<affine, bits = 4, group = 32, symmetric> %x, %c scales(%s) bias(%b) outs(%y) : (tensor<2x64xf32>, tensor<8x8xi32>, tensor<8x2xf32>, tensor<7xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
  return %r : tensor<2x8xf32>
}

// -----

func.func @fused_weight(%x: tensor<2x64xf32>, %c: tensor<8x4xi32>, %s: tensor<8x2xf32>, %y: tensor<2x8xf32>) -> tensor<2x8xf32> {
  // expected-error @+1 {{'qf.fused_matmul' op expects 8 words per row for 64 codes of 4 bits, got 4}}
  %r = qf.fused_matmul #qf.scheme<affine, bits = 4, group = 32, symmetric> %x, %c scales(%s) outs(%y) : (tensor<2x64xf32>, tensor<8x4xi32>, tensor<8x2xf32>, tensor<2x8xf32>) -> tensor<2x8xf32>
  return %r : tensor<2x8xf32>
}

// -----

func.func @fused_csr(%x: memref<2x64xf32>, %c: memref<8x8xi32>, %l: memref<8x16xf32>, %rp: memref<8xi32>, %ci: memref<3xi32>, %v: memref<3xf32>, %y: memref<2x8xf32>) {
  // expected-error @+1 {{'qf.fused_matmul' op expects 9 row pointers for 8 rows, got 8}}
  qf.fused_matmul #qf.scheme<codebook, bits = 4> %x, %c lut(%l) outliers(%rp, %ci, %v) outs(%y) : (memref<2x64xf32>, memref<8x8xi32>, memref<8x16xf32>, memref<8xi32>, memref<3xi32>, memref<3xf32>, memref<2x8xf32>) -> ()
  return
}

// -----

func.func @fused_codes_type(%x: memref<2x64xf32>, %c: memref<8x8xi8>, %s: memref<8x2xf32>, %y: memref<2x8xf32>) {
  // expected-error @+1 {{'qf.fused_matmul' op expects codes packed in i32 words}}
  qf.fused_matmul #qf.scheme<affine, bits = 4, group = 32, symmetric> %x, %c scales(%s) outs(%y) : (memref<2x64xf32>, memref<8x8xi8>, memref<8x2xf32>, memref<2x8xf32>) -> ()
  return
}

// -----

func.func @fused_scales_type(%x: memref<2x64xf32>, %c: memref<8x8xi32>, %s: memref<8x2xi32>, %y: memref<2x8xf32>) {
  // expected-error @+1 {{'qf.fused_matmul' op expects floating-point scales}}
  qf.fused_matmul #qf.scheme<affine, bits = 4, group = 32, symmetric> %x, %c scales(%s) outs(%y) : (memref<2x64xf32>, memref<8x8xi32>, memref<8x2xi32>, memref<2x8xf32>) -> ()
  return
}

// -----

func.func @fused_zero_point_type(%x: memref<2x64xf32>, %c: memref<8x8xi32>, %s: memref<8x2xf32>, %z: memref<8x2xi32>, %y: memref<2x8xf32>) {
  // expected-error @+1 {{'qf.fused_matmul' op expects i8 zero points}}
  qf.fused_matmul #qf.scheme<affine, bits = 4, group = 32, zero_point> %x, %c scales(%s) zero_points(%z) outs(%y) : (memref<2x64xf32>, memref<8x8xi32>, memref<8x2xf32>, memref<8x2xi32>, memref<2x8xf32>) -> ()
  return
}

// -----

func.func @fused_lut_type(%x: memref<2x64xf32>, %c: memref<8x8xi32>, %l: memref<8x16xi32>, %y: memref<2x8xf32>) {
  // expected-error @+1 {{'qf.fused_matmul' op expects a floating-point lut}}
  qf.fused_matmul #qf.scheme<codebook, bits = 4> %x, %c lut(%l) outs(%y) : (memref<2x64xf32>, memref<8x8xi32>, memref<8x16xi32>, memref<2x8xf32>) -> ()
  return
}

// -----

func.func @fused_csr_index_type(%x: memref<2x64xf32>, %c: memref<8x8xi32>, %l: memref<8x16xf32>, %rp: memref<9xi64>, %ci: memref<3xi32>, %v: memref<3xf32>, %y: memref<2x8xf32>) {
  // expected-error @+1 {{'qf.fused_matmul' op expects i32 row pointers and column indices}}
  qf.fused_matmul #qf.scheme<codebook, bits = 4> %x, %c lut(%l) outliers(%rp, %ci, %v) outs(%y) : (memref<2x64xf32>, memref<8x8xi32>, memref<8x16xf32>, memref<9xi64>, memref<3xi32>, memref<3xf32>, memref<2x8xf32>) -> ()
  return
}

// -----

func.func @fused_csr_value_type(%x: memref<2x64xf32>, %c: memref<8x8xi32>, %l: memref<8x16xf32>, %rp: memref<9xi32>, %ci: memref<3xi32>, %v: memref<3xi32>, %y: memref<2x8xf32>) {
  // expected-error @+1 {{'qf.fused_matmul' op expects floating-point outlier values}}
  qf.fused_matmul #qf.scheme<codebook, bits = 4> %x, %c lut(%l) outliers(%rp, %ci, %v) outs(%y) : (memref<2x64xf32>, memref<8x8xi32>, memref<8x16xf32>, memref<9xi32>, memref<3xi32>, memref<3xi32>, memref<2x8xf32>) -> ()
  return
}
