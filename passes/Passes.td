//===- Passes.td - qforge passes ----------------------------*- tablegen -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#ifndef QFORGE_PASSES_TD
#define QFORGE_PASSES_TD

include "mlir/Pass/PassBase.td"

def QuantizeRTNPass : Pass<"qf-quantize-rtn", "::mlir::func::FuncOp"> {
  let summary = "Rewrite linear weights with round-to-nearest quantization";
  let description = [{
    Finds every `tosa.matmul` whose right operand is a constant weight `[K, N]` (possibly
    behind a `tosa.reshape`) and replaces it with `qf.dequantize` of packed codes and
    scales (and zero points), transposed back to `[K, N]`. Codes, scales and zero points
    are `dense_resource` constants. Each `qf.dequantize` records the layer name
    (`qf.layer`) and the relative weight error ‖W − Ŵ‖/‖W‖ (`qf.weight_error`).
  }];
  let options = [
    Option<"bits", "bits", "unsigned", "4", "Code width: 2, 3, 4 or 8">,
    Option<"groupSize", "group-size", "int64_t", "128",
           "Input channels per scale; -1 per channel, 0 per tensor">,
    Option<"symmetric", "symmetric", "bool", "true",
           "Symmetric codes (no zero points); false stores a zero point per scale">,
    Option<"clip", "clip", "bool", "false",
           "Search each scale's range, shrunk by 1.00 down to 0.80, for the least weight MSE">,
  ];
  let dependentDialects = ["::qforge::qf::QFDialect", "::mlir::tosa::TosaDialect"];
}

def QuantizeGPTQPass : Pass<"qf-gptq", "::mlir::func::FuncOp"> {
  let summary = "Rewrite linear weights with GPTQ, using the statistics of qf-calibrate";
  let description = [{
    For every constant linear (as qf-quantize-rtn finds them) quantizes the weight column by
    column, compensating each column's rounding error in the columns not yet quantized
    through the inverse Hessian H⁻¹ of the layer's calibration inputs (H ∝ XᵀX from
    `qf.calib`): damping `damp` · mean(diag H), upper Cholesky factor of H⁻¹, lazy updates
    in blocks of `block-size` columns. With `act-order` columns go in order of descending
    diag H and the group parameters are fixed up front (static groups), so the codes keep
    the ordinary layout and inference needs no permutation. Produces the same qf ops as
    qf-quantize-rtn, plus `qf.output_error` = ‖XWᵀ − XŴᵀ‖/‖XWᵀ‖ on the calibration inputs.
    A linear without `qf.calib` is an error, unless `only-calibrated` is set: then it
    is left float (sequential quantization, see qf-calibrate's `next-stage`).
  }];
  let options = [
    Option<"bits", "bits", "unsigned", "4", "Code width: 2, 3, 4 or 8">,
    Option<"groupSize", "group-size", "int64_t", "128",
           "Input channels per scale; -1 per channel, 0 per tensor">,
    Option<"symmetric", "symmetric", "bool", "true",
           "Symmetric codes (no zero points); false stores a zero point per scale">,
    Option<"damp", "damp", "double", "0.01", "Damping, a fraction of mean(diag H)">,
    Option<"blockSize", "block-size", "int64_t", "128", "Columns per lazy-update block">,
    Option<"actOrder", "act-order", "bool", "false",
           "Quantize columns by descending diag H (static groups)">,
    Option<"onlyCalibrated", "only-calibrated", "bool", "false",
           "Leave linears without qf.calib float instead of failing">,
    Option<"progress", "progress", "bool", "false", "Print progress to stderr">,
  ];
  let dependentDialects = ["::qforge::qf::QFDialect", "::mlir::tosa::TosaDialect"];
}

def QuantizeAWQPass : Pass<"qf-awq", "::mlir::func::FuncOp"> {
  let summary = "Activation-aware weight quantization, using the statistics of qf-calibrate";
  let description = [{
    Groups the constant linears by their shared input X (q/k/v; gate/up), and per group
    searches per-input-channel scales s = s_x^α (s_x = mean |x| from `qf.calib`, normalised)
    over `grid` values of α in [0, 1), scoring each α by the output error of the group's
    quantized W·diag(s) on the calibration statistics, then (with `clip`) a per-group
    range-shrink search. The inverse scale is folded into the op that makes X when that is
    a multiplication by a constant vector (RMSNorm's weight); else into the output
    channels (weight rows, and a constant bias added on the way) of the previous linear
    when X is made from its output through ops that commute with a per-channel scaling
    (reshape, transpose, attention's P·V, a multiplication such as silu(gate) · up; see
    passes/ChannelTrace.h): v for o, up for down; otherwise an explicit `tosa.mul` by 1/s
    is inserted before the group's matmuls. The matmuls record which in `qf.awq_fold`.
    The group's `qf.calib` (one dictionary for the group) is rescaled to the new input.
    All groups are scaled first, then every linear's final weight is quantized, so that a
    previous linear is quantized with both its own and the folded scales. With
    `quantize=false` the scaled weights stay float, so the model computes the same
    function (a check of the folding).
  }];
  let options = [
    Option<"bits", "bits", "unsigned", "4", "Code width: 2, 3, 4 or 8">,
    Option<"groupSize", "group-size", "int64_t", "128",
           "Input channels per scale; -1 per channel, 0 per tensor">,
    Option<"symmetric", "symmetric", "bool", "true",
           "Symmetric codes (no zero points); false stores a zero point per scale">,
    Option<"grid", "grid", "int64_t", "20", "Number of alpha values, alpha = i / grid">,
    Option<"clip", "clip", "bool", "true", "Search weight clipping after scaling">,
    Option<"quantize", "quantize", "bool", "true",
           "Quantize the scaled weights; false only applies and folds the scales">,
    Option<"progress", "progress", "bool", "false", "Print progress to stderr">,
  ];
  let dependentDialects = ["::qforge::qf::QFDialect", "::mlir::tosa::TosaDialect"];
}

def SplitOutliersPass : Pass<"qf-split-outliers", "::mlir::func::FuncOp"> {
  let summary = "Move sensitive values and outliers of each linear weight into a sparse part";
  let description = [{
    SqueezeLLM's dense-and-sparse split (qforge::quant, Outliers.h). Per constant linear
    weight, first the `sensitive` percent of its weights with the largest sensitivity, then,
    of the rest, the weights outside the symmetric fences
    `|w| > max(|q1 - r IQR|, |q3 + r IQR|)` of the matrix's quartiles, with one range
    factor `r` for all matrices solved so that these outliers are `outliers` percent of all
    weights. The weight constant is replaced by the dense remainder (those weights set to 0)
    and carries the extracted values in CSR form as `qf.outliers` (`row_ptr`, `col_idx`,
    `values`, rows = output channels). The quantization passes that run next quantize the
    remainder and store, at each extracted position, the original weight minus the
    quantized remainder in a `qf.sparse_outliers`, so that the decoded weight is exact
    there. Sensitivity: `fisher` reads `qf.fisher` (qf-fisher), `xtx` the diagonal of
    qf-calibrate's XᵀX for the weight's input channel (the same for every row). A
    quantization pass must follow: the remainder alone is not the weight.
  }];
  let options = [
    Option<"outliers", "outliers", "double", "0.45",
           "Outliers, percent of all weights (0: none)">,
    Option<"sensitive", "sensitive", "double", "0",
           "Most sensitive weights per matrix, percent (0: none)">,
    Option<"sensitivity", "sensitivity", "std::string", "\"xtx\"",
           "What ranks the sensitive weights: fisher or xtx">,
  ];
  let dependentDialects = ["::mlir::tosa::TosaDialect"];
}

def GradPass : Pass<"qf-grad", "::mlir::ModuleOp"> {
  let summary = "Build the gradient of a loss with respect to every constant linear weight";
  let description = [{
    Reverse-mode differentiation of graph IR, source to source at the tensor level. From
    `@entry` (static shapes, TOSA) it builds `@entry_grad` with the same arguments,
    returning the loss (`tensor<1xf32>`, `qf.name = "loss"`) and, for each constant linear
    weight (a `tosa.const` read by `tosa.matmul`, see qf-calibrate), d loss / d W with the
    constant's shape (`qf.name = "grad.<layer>"`). The forward body is cloned; then, in
    reverse order, one adjoint rule per TOSA op is emitted for the active ops only (those
    both reachable from a weight and reaching the loss), with fan-out adjoints summed and
    broadcast operands un-broadcast by `tosa.reduce_sum`. Loss `cross-entropy`: the mean
    next-token cross-entropy of logits `[1, T, V]` (result 0) against the token input
    `[1, T]` (argument 0) over the T - 1 predictions, as a Hugging Face causal LM with
    `labels = input_ids`; loss `sum`: the sum of every element of every f32 result
    (for testing the rules). With
    `replace`, the gradient function takes the entry's name and the forward function
    is removed (to compile it as a module's entry point).
  }];
  let options = [
    Option<"entry", "entry", "std::string", "\"main\"", "The forward function">,
    Option<"loss", "loss", "std::string", "\"cross-entropy\"",
           "cross-entropy (next-token, against argument 0) or sum (of every f32 result)">,
    Option<"replace", "replace", "bool", "false",
           "The gradient function replaces the forward function">,
  ];
  let dependentDialects = ["::mlir::tosa::TosaDialect"];
}

def FisherPass : Pass<"qf-fisher", "::mlir::ModuleOp"> {
  let summary = "Attach the empirical Fisher information of every constant linear weight";
  let description = [{
    SqueezeLLM's sensitivity: per weight, the mean over calibration sequences of the
    squared per-sequence gradient of the next-token cross-entropy, (1/S) Σ_s g_s ⊙ g_s.
    A copy of the module gets qf-grad's gradient function as its entry point; it is
    compiled and run through qforge's own CPU code once per sequence (`nsamples` windows
    of T bytes drawn, seeded, from the calibration text `calib` as qf-calibrate draws
    them, where `[1, T]` is the static shape of the token input). Each weight constant gets
    `qf.fisher` (f32, the constant's shape), which qf-split-outliers and qf-squeezellm read
    with `sensitivity=fisher`. The model must have static shapes (import with
    `--shape input_ids=1xT`); qforge-compile does this on its own.
  }];
  let options = [
    Option<"calib", "calib", "std::string", "\"\"", "Calibration text file (bytes are tokens)">,
    Option<"nsamples", "nsamples", "int64_t", "128", "Number of sequences">,
    Option<"seed", "seed", "uint64_t", "0", "Seed of the window sampler">,
    Option<"progress", "progress", "bool", "false", "Print progress to stderr">,
  ];
  let dependentDialects = ["::mlir::tosa::TosaDialect"];
}

def QuantizeSqueezeLLMPass : Pass<"qf-squeezellm", "::mlir::func::FuncOp"> {
  let summary = "Rewrite linear weights with sensitivity-weighted non-uniform k-means (SqueezeLLM)";
  let description = [{
    Per output row of each constant linear weight, a k-means with 2^bits centroids over
    the row's weights, each weighted by its sensitivity (qforge::quant, Codebook.h): the
    exact weighted 1-D optimum by default (`solver=exact`), or weighted k-means++ and Lloyd
    as SqueezeLLM's reference code runs (`solver=lloyd`). The weight becomes
    `qf.dequantize #qf.scheme<codebook, bits = B>` of packed codes and a per-row table, f32
    or (`table=f16`) f16 with each entry rounded to the nearest f16 value after the
    k-means (the codes stay; outliers' residuals use the rounded entries).
    Sensitivity: `fisher` (`qf.fisher` on the weight constant, from qf-fisher), `xtx` (the
    diagonal of qf-calibrate's XᵀX per input channel) or `none` (plain k-means). Weights
    that qf-split-outliers extracted get weight 0 and their exact values in a
    `qf.sparse_outliers`.
  }];
  let options = [
    Option<"bits", "bits", "unsigned", "4", "Code width: 2, 3, 4 or 8">,
    Option<"sensitivity", "sensitivity", "std::string", "\"xtx\"",
           "Sample weights of the k-means: fisher, xtx or none">,
    Option<"solver", "solver", "std::string", "\"exact\"",
           "exact (dynamic programming) or lloyd (k-means++ and Lloyd, 50 iterations)">,
    Option<"seed", "seed", "uint64_t", "0", "Seed of the k-means++ initialisation">,
    Option<"table", "table", "std::string", "\"f32\"",
           "Element type of the tables: f32, or f16 (entries rounded to nearest)">,
    Option<"progress", "progress", "bool", "false", "Print progress to stderr">,
  ];
  let dependentDialects = ["::qforge::qf::QFDialect", "::mlir::tosa::TosaDialect"];
}

def CalibratePass : Pass<"qf-calibrate", "::mlir::ModuleOp"> {
  let summary = "Attach input statistics of every linear layer, measured on calibration text";
  let description = [{
    Runs the float model on `nsamples` windows of `seqlen` bytes drawn (seeded) from the
    calibration text `calib`, through qforge's own CPU code: a copy of the module returns
    the input activations X of every constant linear (`tosa.matmul` with a constant weight)
    as extra results, is compiled and run once per window. Each linear then gets a
    `qf.calib` dictionary: `rows` (tokens seen), `mean_abs` (mean |x| per input channel,
    `[K]`, AWQ's s_x) and `xtx` (XᵀX / rows, `[K, K]` f32, GPTQ's Hessian up to a factor).
    The model must take byte tokens as its one non-weight input (`input_ids`, `[1, T]`,
    T dynamic or equal to `seqlen`). Compiling and running needs the executor that
    qforge-compile and qforge-opt install; elsewhere the pass fails with a message.

    With `next-stage`, only the next stage is measured: the constant linears whose input
    depends on no other constant (still float) linear, e.g. q/k/v of the first block, or
    o once q/k/v are quantized. Alternating it with `qf-gptq{only-calibrated}` until no
    float linear is left quantizes sequentially, each stage's statistics taken from the
    model whose earlier stages are already quantized (qforge-compile --sequential).
    Only what the measured inputs need is compiled and run.
  }];
  let options = [
    Option<"calib", "calib", "std::string", "\"\"", "Calibration text file (bytes are tokens)">,
    Option<"nsamples", "nsamples", "int64_t", "128", "Number of windows">,
    Option<"seqlen", "seqlen", "int64_t", "256", "Bytes per window">,
    Option<"seed", "seed", "uint64_t", "0", "Seed of the window sampler">,
    Option<"nextStage", "next-stage", "bool", "false",
           "Measure only the linears that read no float linear's output">,
    Option<"progress", "progress", "bool", "false", "Print progress to stderr">,
  ];
}

def FuseDequantMatmulPass : Pass<"qf-fuse-dequant-matmul", "::mlir::func::FuncOp"> {
  let summary = "Fuse dequantize, transpose, matmul and bias add into qf.fused_matmul";
  let description = [{
    Rewrites `tosa.matmul(x, reshape(transpose(qf.dequantize ...)))`, optionally through
    `qf.sparse_outliers`, into `qf.fused_matmul`, then folds a following bias
    `tosa.add` of a constant broadcast along the last dimension into its `bias` operand.
  }];
  let dependentDialects = ["::qforge::qf::QFDialect", "::mlir::tensor::TensorDialect"];
}

def ExternalizeWeightsPass : Pass<"qf-externalize-weights", "::mlir::ModuleOp"> {
  let summary = "Turn weight constants of @main into arguments bound to their data";
  let description = [{
    Every `dense_resource` constant (and every dense constant of at least `min-elements`
    elements) used in the entry function becomes a new leading argument of that function
    carrying the data as the argument attribute `qf.weight`. The module emitter stores
    these as file sections that the runtime maps and passes in, so native code never
    embeds weights.
  }];
  let options = [
    Option<"entry", "entry", "std::string", "\"main\"", "Entry function">,
    Option<"minElements", "min-elements", "int64_t", "256",
           "Dense (non-resource) constants with fewer elements stay inline">,
  ];
}

def LowerFusedMatmulToLoopsPass : Pass<"qf-lower-fused-matmul-to-loops", "::mlir::func::FuncOp"> {
  let summary = "Lower buffer-form qf.fused_matmul to CPU kernels (vector GEMV/GEMM or scalar loops)";
  let description = [{
    Replaces each `qf.fused_matmul` on memrefs by a CPU kernel.

    With `vectorize` (the default) and a scheme the vector kernels cover (f32 activations;
    affine with groups of a multiple of 32 input channels, per channel or per tensor; or a
    codebook), two SIMD kernels behind a run-time test on the number of activation rows M:
    - GEMV (M <= `gemv-max-rows`): a vector lane is a unit of 32 codes (`bits` packed words);
      one load brings `vector-width` units in storage order, constant shifts cut code j of
      every unit, the activations are transposed once per call to that lane order, scales
      apply once per unit and zero points through per-unit activation sums;
    - GEMM (larger M): per tile of 2 x `vector-width` output channels and 256 input channels,
      the codes are decoded once into an f32 panel that the register-blocked micro-kernel
      (8 rows x 2 vectors, 4 rows on 8-lane vectors) reuses for every row.
    Other schemes get scalar loops: per output element and group, unpack codes, accumulate
    x·(code − zero) and scale once per group. All kernels add the CSR outliers and the bias.

    With `int8-activations`, the GEMV and the GEMM quantize each unit of 32 activations to
    int8 (one scale per unit) and multiply four codes by four activations per `vpdpbusd`
    lane; the GEMM's panel then holds the codes as bytes, and its micro-kernel keeps i32
    sums over one unit for 4 rows x 2 vectors before scaling them into f32 accumulators.

    The outer loop (output channels or tiles) is an `scf.parallel`, which the CPU pipeline
    turns into OpenMP threads, when the layer has at least `parallel-min-weights` weights.
  }];
  let options = [
    Option<"vectorize", "vectorize", "bool", "true",
           "Use the SIMD kernels where the scheme allows">,
    Option<"vectorWidth", "vector-width", "int64_t", "16",
           "f32 lanes per vector (16: AVX-512, 8: AVX2)">,
    Option<"gemvMaxRows", "gemv-max-rows", "int64_t", "4",
           "Largest number of activation rows that takes the GEMV kernel">,
    Option<"int8Activations", "int8-activations", "bool", "false",
           "GEMV and GEMM: quantize activations to int8 per 32 channels and use vpdpbusd "
           "(AVX-512 VNNI; affine schemes, vector-width 16)">,
    Option<"parallelMinWeights", "parallel-min-weights", "int64_t", "131072",
           "Smallest N*K that runs on several threads">,
  ];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect", "::mlir::vector::VectorDialect",
                           "::mlir::math::MathDialect", "::mlir::LLVM::LLVMDialect"];
}

def LowerFloatMatmulPass : Pass<"qf-lower-float-matmul", "::mlir::func::FuncOp"> {
  let summary = "Lower float matmuls (linear layers, attention's products) to the GEMM micro-kernel";
  let description = [{
    Replaces each `linalg.matmul`, or `linalg.batch_matmul` with a batch of one, on f32
    buffers whose right operand B [K, N] has a static shape (a linear layer's weight) by the
    register-blocked GEMM micro-kernel of the fused kernels: per tile of 2 x `vector-width`
    output channels (threads, when N*K >= `parallel-min-weights`) and 256 input channels,
    that block of B is copied into a contiguous panel, then multiplied by 8 rows of the
    left operand at a time (4 with 8-lane vectors), one row for the rest. Like linalg, it accumulates into the output buffer. With at most
    `gemv-max-rows` rows (tested at run time when the rows are dynamic) a streaming GEMV
    reads B once in storage order, four rows of B at a time into every output vector, with
    one body per row count; when N*K >= `parallel-min-weights` it splits K into up to 16
    chunks of at least 64 rows of B (threads), each into its own partial output, and then
    adds the partials (split-K).

    Other `linalg.batch_matmul`s on contiguous f32 buffers (attention's products, whose
    shapes are dynamic) get the same micro-kernel per batch and tile of output columns,
    reading the right operand in place; they run on threads over (batch, tile) when
    B*M*N*K >= 16 * `parallel-min-weights` (tested at run time).
  }];
  let options = [
    Option<"vectorWidth", "vector-width", "int64_t", "16",
           "f32 lanes per vector (16: AVX-512, 8: AVX2)">,
    Option<"gemvMaxRows", "gemv-max-rows", "int64_t", "4",
           "Largest number of rows that take the streaming GEMV">,
    Option<"parallelMinWeights", "parallel-min-weights", "int64_t", "131072",
           "Smallest N*K that runs on several threads">,
  ];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect", "::mlir::vector::VectorDialect"];
}

def OrderMatmulLoopsPass : Pass<"qf-order-matmul-loops", "::mlir::func::FuncOp"> {
  let summary = "Put the reduction loop of float matmuls outside the output-column loop";
  let description = [{
    Generalizes `linalg.matmul` / `linalg.batch_matmul` and interchanges their last two
    iterators, (…, m, n, k) → (…, m, k, n), so that `convert-linalg-to-loops` emits an
    innermost loop over contiguous output columns (C[m, n] += A[m, k] · B[k, n]), which
    LLVM vectorizes, instead of a strided dot product down a column of B.
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

def DropSameSizeBroadcastsPass : Pass<"qf-drop-same-size-broadcasts", "::mlir::func::FuncOp"> {
  let summary = "Remove tosa-to-linalg's run-time broadcast guards where sizes provably match";
  let description = [{
    `tosa-to-linalg` guards each operand of an elementwise op that has a dynamic
    dimension with `scf.if (size == 1)` around a broadcasting copy. Where the copy's
    output size is provably the operand's own size (ValueBoundsConstraintSet), both
    branches yield the operand, and the `scf.if` is replaced by it. This removes the
    region boundaries that keep `linalg-fuse-elementwise-ops` from fusing the
    elementwise chains of models with a dynamic sequence length.
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect", "::mlir::scf::SCFDialect",
                           "::mlir::tensor::TensorDialect"];
}

def FuseElementwisePass : Pass<"qf-fuse-elementwise", "::mlir::func::FuncOp"> {
  let summary = "Fuse single-use elementwise producers into linalg.generic consumers";
  let description = [{
    The upstream elementwise-fusion patterns, with a control function that fuses a
    `linalg.generic` producer with one use into a `linalg.generic` consumer only. Unlike
    `linalg-fuse-elementwise-ops`, reshapes are not propagated and named ops
    (`linalg.batch_matmul`, `linalg.matmul`) are never rewritten into generics, so the
    matmul kernels still find them.
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

def LowerStridedCopiesPass : Pass<"qf-lower-strided-copies", "::mlir::func::FuncOp"> {
  let summary = "Turn memref.copy between strided views into linalg.copy";
  let description = [{
    A `memref.copy` whose source or target has a non-identity layout lowers to a call
    of the MLIR runtime's element-by-element `memrefCopy`. As `linalg.copy` it becomes
    loops with a contiguous innermost loop that LLVM vectorizes, and that
    `qf-parallelize-linalg` threads when large. Copies between identity layouts stay
    (one memmove).
  }];
  let dependentDialects = ["::mlir::linalg::LinalgDialect"];
}

def ReassociateReductionsPass : Pass<"qf-reassociate-reductions", "::mlir::func::FuncOp"> {
  let summary = "Mark the accumulating float ops of linalg reductions reassociable";
  let description = [{
    In each linalg op with a reduction loop, the `arith.addf`/`mulf`/`maximumf`/
    `minimumf`/`maxnumf`/`minnumf` that combine into an output accumulator get the
    `reassoc` fast-math flag, so that LLVM vectorizes the reduction loops that
    `convert-linalg-to-loops` emits (row sums of RMSNorm and softmax, running maxima).
  }];
  let dependentDialects = ["::mlir::arith::ArithDialect"];
}

def ParallelizeLinalgPass : Pass<"qf-parallelize-linalg", "::mlir::func::FuncOp"> {
  let summary = "Run large linalg ops on buffers on threads, keeping the innermost loop serial";
  let description = [{
    Each linalg op on buffers (elementwise chains, softmax and norm rows, transposes)
    whose iteration space may reach `min-work` points is guarded by a run-time test on
    its size. Above it, the op's loops (upstream `linalgOpToLoops`) run with their
    leading parallel loops, never the innermost loop, as one `scf.parallel`
    (threads through `convert-scf-to-openmp`); below it, the op is left for
    `convert-linalg-to-loops`. Ops whose static size is below `min-work` are untouched.
  }];
  let options = [
    Option<"minWork", "min-work", "int64_t", /*default=*/"1 << 15",
           "Iteration points from which an op runs on threads">,
  ];
  let dependentDialects = ["::mlir::linalg::LinalgDialect", "::mlir::scf::SCFDialect",
                           "::mlir::arith::ArithDialect"];
}

def ApproximateMathPass : Pass<"qf-approximate-math", "::mlir::func::FuncOp"> {
  let summary = "Replace f32 exp, log, tanh, erf, sin, cos by inline polynomials";
  let description = [{
    Applies the upstream polynomial approximations (a few ULP from the libm results)
    to `math.exp`, `expm1`, `log`, `log1p`, `log2`, `tanh`, `erf`, `sin`, `cos` and
    `atan` on f32 scalars and vectors, so that the CPU loops of softmax and activation
    functions call no libm function and LLVM can vectorize them.
  }];
  let dependentDialects = ["::mlir::math::MathDialect", "::mlir::arith::ArithDialect",
                           "::mlir::vector::VectorDialect"];
}

def TileLoopsForGPUPass : Pass<"qf-tile-loops-for-gpu", "::mlir::func::FuncOp"> {
  let summary = "Tile host scf.parallel loops into blocks of threads for the GPU mapping";
  let description = [{
    Each outermost `scf.parallel` outside GPU code becomes a loop over blocks around a
    loop over `threads` threads (upstream `tileParallelLoop`, fixed inner bounds with an
    in-bounds guard), the threads given to the innermost dimensions first. Then
    `gpu-map-parallel-loops` and `convert-parallel-loops-to-gpu` turn each into a
    `gpu.launch`.
  }];
  let options = [
    Option<"threads", "threads", "int64_t", /*default=*/"128",
           "Threads per block (a power of two)">,
  ];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::arith::ArithDialect",
                           "::mlir::affine::AffineDialect"];
}

def DeviceBuffersPass : Pass<"qf-device-buffers", "::mlir::ModuleOp"> {
  let summary = "Put the buffers that GPU code reads or writes in device memory";
  let description = [{
    A `memref.alloc` of host code whose buffer (or a view of it) reaches a `gpu.launch`
    body, a `gpu.launch_func`, a copy or a return becomes `gpu.alloc`, and its
    `memref.dealloc` a `gpu.dealloc`; buffers only host code touches (shape operands of
    `memref.reshape`, the deallocation helper's pointer lists) stay host memory.
    Copies between contiguous buffers become `gpu.memcpy`; a copy with a strided side
    is an error here (`qf-lower-strided-copies` makes it a kernel first).
  }];
  let dependentDialects = ["::mlir::gpu::GPUDialect", "::mlir::memref::MemRefDialect"];
}

def MergeGPUModulesPass : Pass<"qf-merge-gpu-modules", "::mlir::ModuleOp"> {
  let summary = "Move every kernel into one gpu.module";
  let description = [{
    `gpu-kernel-outlining` puts each kernel in a `gpu.module` of its own, which would
    become one PTX module (and one module load) per kernel. This moves every kernel
    into the first `gpu.module` (renamed where names clash) and points each
    `gpu.launch_func` at it, so that a target's kernels are one PTX module.
  }];
  let dependentDialects = ["::mlir::gpu::GPUDialect"];
}

def LowerFusedMatmulToGPUPass : Pass<"qf-lower-fused-matmul-to-gpu", "::mlir::ModuleOp"> {
  let summary = "Lower buffer-form qf.fused_matmul to generated GPU kernels";
  let description = [{
    Replaces each `qf.fused_matmul` on memrefs by a `gpu.launch_func` of a kernel
    specialised for its shape and scheme, generated into `gpu.module @qf_kernels`.
  }];
  let dependentDialects = ["::mlir::gpu::GPUDialect", "::mlir::NVVM::NVVMDialect",
                           "::mlir::scf::SCFDialect", "::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect", "::mlir::vector::VectorDialect",
                           "::mlir::LLVM::LLVMDialect"];
}

def EmulateWarpGemvPass : Pass<"qf-emulate-warp-gemv", "::mlir::func::FuncOp"> {
  let summary = "Lower the fused matmuls the CUDA warp GEMV takes to CPU loops with its arithmetic";
  let description = [{
    Testing aid for the CUDA kernels on machines without a GPU. Each buffer-form
    `qf.fused_matmul` that the CUDA target computes with the warp GEMV (f32 activations;
    affine 2/4/8-bit codes or 2- to 4-bit codebooks, with or without CSR outliers; see
    `canUseWarpGemv`) becomes CPU loops that run the kernel's per-lane code, emitted by the
    same generator, for lanes 0..31 in turn, tile of rows by tile of rows, and then the
    kernel's butterfly reduction over the lane values: for affine codes x rounded to f16,
    codes decoded to f16 pairs, f16x2 products summed per word, f32 sums per lane; for
    codebooks f32 table look-ups. Other fused matmuls are left for
    `qf-lower-fused-matmul-to-loops`.
  }];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect", "::mlir::vector::VectorDialect",
                           "::mlir::LLVM::LLVMDialect"];
}

def WarpReductionsPass : Pass<"qf-warp-reductions", "::mlir::func::FuncOp"> {
  let summary = "Give each output of a long parallel-loop reduction to a warp";
  let description = [{
    For the CUDA target, after `convert-linalg-to-parallel-loops`. A top-level
    `scf.parallel` whose body is one `scf.for` that combines a term into an output
    element (`store combiner(load out[idx], term), out[idx]`, indices fixed in the loop;
    f32; `addf`, `mulf`, `maximumf`, `minimumf`, `maxnumf` or `minnumf`) is a reduction:
    the row sums of norms, softmax's maximum and sum, attention's products.

    A reduction over at least `min-warp-extent` terms (or a number known only at run
    time) gets a new innermost parallel dimension of 32 lanes: lane l combines terms
    l, l + 32, ... in a register from the combiner's identity, a butterfly of
    `gpu.shuffle xor` combines the lanes, and lane 0 combines the total into the output.
    `qf-tile-loops-for-gpu` gives the lane dimension thread x, so the 32 lanes of one
    output are one warp. A shorter one, or one whose terms are not all read along their
    buffer's innermost dimension (a load that moves with the loop in any other index: a
    matmul's [K, N] operand, where threads of neighbouring outputs read neighbouring
    addresses and a warp's lanes would not), keeps a thread per output and accumulates
    in a register in the original order.

    With `emulate` (a testing aid for CPU targets) the lanes run in turn and the
    butterfly combines a `vector<32xf32>` of their values: the same sums in the same
    order as the kernels.
  }];
  let options = [
    Option<"emulate", "emulate", "bool", /*default=*/"false",
           "CPU: run the lanes in turn and the butterfly on a vector">,
    Option<"minWarpExtent", "min-warp-extent", "int64_t", /*default=*/"64",
           "Reductions of fewer terms (static) keep one thread per output">,
  ];
  let dependentDialects = ["::mlir::scf::SCFDialect", "::mlir::arith::ArithDialect",
                           "::mlir::memref::MemRefDialect", "::mlir::vector::VectorDialect",
                           "::mlir::gpu::GPUDialect"];
}

#endif // QFORGE_PASSES_TD
