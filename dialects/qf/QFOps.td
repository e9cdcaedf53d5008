//===- QFOps.td - qf dialect operations ----------------------*- tablegen -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_DIALECT_QF_QFOPS_TD
#define QFORGE_DIALECT_QF_QFOPS_TD

include "QFAttrs.td"
include "mlir/Interfaces/SideEffectInterfaces.td"
include "mlir/Interfaces/DestinationStyleOpInterface.td"

def QF_Codes : TensorOf<[I32]>;
def QF_Shaped : AnyTypeOf<[AnyRankedTensor, AnyMemRef]>;

def QF_DequantizeOp : QF_Op<"dequantize", [Pure, AttrSizedOperandSegments]> {
  let summary = "Decode packed codes into a float weight [N, K]";
  let description = [{
    Decodes the packed codes `codes : tensor<N x ceil(K*bits/32) x i32>` into the weight
    `W : tensor<N x K x f>`. With an affine scheme, `W[n,k] = scales[n', g] * (code - zero)`
    where `g = k / group` (0 per channel), `n' = n` (0 per tensor) and `zero` is
    `zero_points[n', g]` (read as unsigned) or 2^(bits-1) when symmetric. With a codebook
    scheme, `W[n,k] = lut[n, code]`.

    ```mlir
    %w = qf.dequantize #qf.scheme<affine, bits = 4, group = 32, symmetric>
           %codes scales(%s : tensor<8x2xf32>) : tensor<8x8xi32> -> tensor<8x64xf32>
    ```
  }];
  let arguments = (ins QF_Codes:$codes,
                       Optional<RankedTensorOf<[F32, F16, BF16]>>:$scales,
                       Optional<RankedTensorOf<[I8]>>:$zero_points,
                       Optional<RankedTensorOf<[F32, F16, BF16]>>:$lut,
                       QF_SchemeAttr:$scheme);
  let results = (outs RankedTensorOf<[F32, F16, BF16]>:$result);
  let assemblyFormat = [{
    qualified($scheme) $codes (`scales` `(` $scales^ `:` type($scales) `)`)?
    (`zero_points` `(` $zero_points^ `:` type($zero_points) `)`)?
    (`lut` `(` $lut^ `:` type($lut) `)`)?
    attr-dict `:` type($codes) `->` type($result)
  }];
  let hasVerifier = 1;
}

def QF_SparseOutliersOp : QF_Op<"sparse_outliers", [Pure, AllTypesMatch<["dense", "result"]>]> {
  let summary = "Add a CSR matrix of outliers to a dense weight [N, K]";
  let description = [{
    `result = dense + S`, where `S` is the N x K matrix in compressed sparse row form:
    row `n` holds `values[j]` at column `col_idx[j]` for `row_ptr[n] <= j < row_ptr[n+1]`.
    `row_ptr` has N+1 entries, starts at 0 and ends at nnz, the length of `col_idx` and
    `values`.

    ```mlir
    %w2 = qf.sparse_outliers %w, %row_ptr, %col_idx, %vals
            : tensor<8x64xf32>, tensor<9xi32>, tensor<3xi32>, tensor<3xf32>
    ```
  }];
  let arguments = (ins RankedTensorOf<[F32, F16, BF16]>:$dense,
                       RankedTensorOf<[I32]>:$row_ptr, RankedTensorOf<[I32]>:$col_idx,
                       RankedTensorOf<[F32, F16, BF16]>:$values);
  let results = (outs RankedTensorOf<[F32, F16, BF16]>:$result);
  let assemblyFormat = [{
    $dense `,` $row_ptr `,` $col_idx `,` $values attr-dict `:`
    type($dense) `,` type($row_ptr) `,` type($col_idx) `,` type($values)
  }];
  let hasVerifier = 1;
}

def QF_FusedMatmulOp : QF_Op<"fused_matmul", [AttrSizedOperandSegments,
    DeclareOpInterfaceMethods<DestinationStyleOpInterface>,
    DeclareOpInterfaceMethods<MemoryEffectsOpInterface>]> {
  let summary = "x · (dequantized weight + sparse outliers)ᵀ + bias, in one operation";
  let description = [{
    `y[..., n] = sum_k x[..., k] * W[n, k] + bias[n]`, where `W` is what `qf.dequantize`
    (and `qf.sparse_outliers` when `outliers(...)` is present) define from the same operands
    and scheme. `x` has shape `[..., K]`; the destination `outs` has shape `[..., N]` and is
    overwritten (not accumulated into). Like linalg operations it works on tensors (one result)
    or on memrefs (no result, after bufferization). Kernels implement this operation.

    ```mlir
    %y = qf.fused_matmul #qf.scheme<affine, bits = 4, group = 32, symmetric>
           %x, %codes scales(%s) bias(%b) outs(%init)
           : (tensor<1x1x64xf32>, tensor<8x8xi32>, tensor<8x2xf32>, tensor<8xf32>, tensor<1x1x8xf32>)
           -> tensor<1x1x8xf32>
    ```
  }];
  let arguments = (ins QF_Shaped:$x, QF_Shaped:$codes,
                       Optional<QF_Shaped>:$scales,
                       Optional<QF_Shaped>:$zero_points,
                       Optional<QF_Shaped>:$lut,
                       Optional<QF_Shaped>:$row_ptr,
                       Optional<QF_Shaped>:$col_idx,
                       Optional<QF_Shaped>:$values,
                       Optional<QF_Shaped>:$bias,
                       QF_Shaped:$init,
                       QF_SchemeAttr:$scheme);
  let results = (outs Optional<AnyRankedTensor>:$result);
  let assemblyFormat = [{
    qualified($scheme) $x `,` $codes (`scales` `(` $scales^ `)`)?
    (`zero_points` `(` $zero_points^ `)`)? (`lut` `(` $lut^ `)`)?
    (`outliers` `(` $row_ptr^ `,` $col_idx `,` $values `)`)? (`bias` `(` $bias^ `)`)?
    `outs` `(` $init `)` attr-dict
    `:` functional-type(operands, results)
  }];
  let hasVerifier = 1;
  let extraClassDeclaration = [{
    bool hasOutliers() { return getRowPtr() != nullptr; }
    int64_t getK() { return mlir::cast<mlir::ShapedType>(getX().getType()).getShape().back(); }
    int64_t getN() { return mlir::cast<mlir::ShapedType>(getInit().getType()).getShape().back(); }
  }];
}

#endif // QFORGE_DIALECT_QF_QFOPS_TD
