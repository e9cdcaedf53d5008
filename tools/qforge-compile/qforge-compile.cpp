//===- qforge-compile.cpp - Compile an ONNX model to a .qfm module -*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "qforge/Compiler/Compiler.h"
#include "qforge/Runtime/Runtime.h"

#include "llvm/Support/CommandLine.h"
#include "llvm/Support/InitLLVM.h"
#include "llvm/Support/raw_ostream.h"

using namespace llvm;

static cl::OptionCategory category("qforge-compile options");
static cl::opt<std::string> input(cl::Positional,
                                  cl::desc("<model.onnx | graph.mlir>"),
                                  cl::Required, cl::cat(category));
static cl::opt<std::string> output("o", cl::desc("Output module (.qfm)"),
                                   cl::value_desc("file"), cl::Required,
                                   cl::cat(category));
static cl::opt<std::string>
    method("method",
           cl::desc("Quantization method: none, rtn, gptq, awq, squeezellm "
                    "(gptq, awq and squeezellm need --calib)"),
           cl::init("rtn"), cl::cat(category));
static cl::opt<unsigned> bits("bits", cl::desc("Code width: 2, 3, 4 or 8"),
                              cl::init(4), cl::cat(category));
static cl::opt<int64_t>
    groupSize("group-size",
              cl::desc("Input channels per scale; -1 per channel, "
                       "0 per tensor"),
              cl::init(128), cl::cat(category));
static cl::opt<bool>
    sym("sym", cl::desc("Symmetric codes (--sym=false stores zero points)"),
        cl::init(true), cl::cat(category));
static cl::opt<std::string>
    target("target",
           cl::desc("Comma-separated targets: cpu, cuda:sm_80, "
                    "cuda:sm_90"),
           cl::init("cpu"), cl::cat(category));
static cl::opt<std::string>
    cpu("cpu",
        cl::desc("CPU to generate code for: native or an LLVM CPU "
                 "name (x86-64-v3 is portable to AVX2 machines)"),
        cl::init("native"), cl::cat(category));
static cl::opt<std::string> activations(
    "activations",
    cl::desc("CPU matmul kernels' activations: int8 (quantized per 32 "
             "channels, integer dot products; needs AVX-512 VNNI, else f32) "
             "or f32"),
    cl::init("int8"), cl::cat(category));
static cl::opt<int64_t> gemvMaxRows(
    "gemv-max-rows",
    cl::desc("CPU: calls with at most this many activation rows take the "
             "GEMV (decode) kernel, more rows the GEMM kernel"),
    cl::init(4), cl::cat(category));
static cl::opt<bool> emulateCuda(
    "emulate-cuda",
    cl::desc("Testing: the CPU code computes as the CUDA kernels do (the warp "
             "GEMV's f16 activations and products, reductions across warps)"),
    cl::cat(category));
static cl::list<std::string> shapes("shape",
                                    cl::desc("Static input shape, name=1x256"),
                                    cl::value_desc("name=DxD"),
                                    cl::cat(category));
static cl::opt<bool>
    printIR("print-ir-after-all",
            cl::desc("Print the IR after every pass (large constants elided)"),
            cl::cat(category));
static cl::opt<std::string>
    dumpIR("dump-ir",
           cl::desc("Write the IR after every pass to DIR/NN-pass.mlir"),
           cl::value_desc("dir"), cl::cat(category));
static cl::opt<std::string> emitPTX("emit-ptx",
                                    cl::desc("Also write the PTX of each CUDA "
                                             "target to DIR"),
                                    cl::value_desc("dir"), cl::cat(category));
static cl::opt<std::string>
    calib("calib",
          cl::desc("Calibration text: attach each linear layer's input "
                   "statistics (qf-calibrate) before quantizing"),
          cl::value_desc("file"), cl::init(""), cl::cat(category));
static cl::opt<int64_t> nsamples("nsamples",
                                 cl::desc("Calibration windows (default 128)"),
                                 cl::init(128), cl::cat(category));
static cl::opt<int64_t> seqlen("seqlen",
                               cl::desc("Bytes per calibration window "
                                        "(default 256)"),
                               cl::init(256), cl::cat(category));
static cl::opt<uint64_t> seed("seed",
                              cl::desc("Seed of the calibration sampler"),
                              cl::init(0), cl::cat(category));
static cl::opt<bool> clip("clip",
                          cl::desc("rtn: search each scale's range for the "
                                   "least weight MSE"),
                          cl::cat(category));
static cl::opt<bool> actOrder("act-order",
                              cl::desc("gptq: quantize columns by descending "
                                       "diag H (static groups)"),
                              cl::cat(category));
static cl::opt<bool>
    sequential("sequential",
               cl::desc("gptq: calibrate and quantize one stage of linears "
                        "at a time, each measured on the model whose earlier "
                        "stages are already quantized"),
               cl::cat(category));
static cl::opt<std::string> sensitivity(
    "sensitivity",
    cl::desc("squeezellm and --sensitive: what weighs each weight: fisher "
             "(mean squared gradient of the loss over --nsamples windows of "
             "--seqlen calibration bytes, qf-fisher), xtx (the diagonal of "
             "the calibration inputs' XᵀX) or none (squeezellm: plain "
             "k-means)"),
    cl::init("xtx"), cl::cat(category));
static cl::opt<std::string>
    table("lut",
          cl::desc("squeezellm: element type of the per-row tables: f32 "
                   "(default) or f16 (half the table bytes; entries rounded "
                   "to the nearest f16 value)"),
          cl::init("f32"), cl::cat(category));
static cl::opt<std::string>
    solver("kmeans",
           cl::desc("squeezellm: exact (optimal weighted 1-D k-means) or "
                    "lloyd (k-means++ and Lloyd, as the reference code)"),
           cl::init("exact"), cl::cat(category));
static cl::opt<double> outliers(
    "outliers",
    cl::desc("Keep this percent of the weights, those outside the weight "
             "distribution's fences, as exact sparse outliers (e.g. 0.45)"),
    cl::init(0.0), cl::cat(category));
static cl::opt<double> sensitive(
    "sensitive",
    cl::desc("Also keep this percent of each matrix's most sensitive weights "
             "as sparse outliers (e.g. 0.05)"),
    cl::init(0.0), cl::cat(category));
// --threads N is read before LLVM's option parser (libLLVM registers its own
// 'threads' option).
static cl::extrahelp threadsHelp(
    "\n  --threads N      CPU threads of the calibration runs (default: all "
    "cores)\n");

/// Removes --threads N / --threads=N from argv; returns N (0 when absent) or
/// -1 when the value is not a positive integer.
static int takeThreads(int &argc, char **argv) {
  int threads = 0;
  int out = 1;
  for (int i = 1; i < argc; ++i) {
    StringRef arg = argv[i];
    StringRef value;
    if (arg == "--threads" || arg == "-threads") {
      if (i + 1 >= argc)
        return -1;
      value = argv[++i];
    } else if (arg.consume_front("--threads=") ||
               arg.consume_front("-threads=")) {
      value = arg;
    } else {
      argv[out++] = argv[i];
      continue;
    }
    unsigned n;
    if (value.getAsInteger(10, n) || n == 0 || n > 4096)
      return -1;
    threads = int(n);
  }
  argc = out;
  return threads;
}
static cl::opt<bool> quiet("quiet", cl::desc("Print nothing on success"),
                           cl::cat(category));

static int fail(const std::string &message) {
  errs() << "qforge-compile: error: " << message << "\n";
  return 1;
}

int main(int argc, char **argv) {
  InitLLVM init(argc, argv);
  int threads = takeThreads(argc, argv);
  if (threads < 0)
    return fail("--threads expects an integer from 1 to 4096");
  cl::HideUnrelatedOptions(category);
  cl::ParseCommandLineOptions(argc, argv,
                              "qforge ahead-of-time quantizing compiler\n");

  qforge::rt::setCPUThreads(threads);
  qforge::CompileOptions options;
  options.input = input;
  options.output = output;
  options.method = method;
  options.bits = bits;
  options.groupSize = groupSize;
  options.symmetric = sym;
  options.cpu = cpu;
  if (activations != "int8" && activations != "f32")
    return fail("--activations must be int8 or f32, not '" + activations + "'");
  options.activations = activations;
  if (gemvMaxRows < 0)
    return fail("--gemv-max-rows must be 0 or more");
  options.gemvMaxRows = gemvMaxRows;
  options.emulateCuda = emulateCuda;
  options.printIRAfterAll = printIR;
  options.dumpIRDir = dumpIR;
  options.emitPTXDir = emitPTX;
  options.quiet = quiet;
  options.calib = calib;
  options.clip = clip;
  options.actOrder = actOrder;
  if (sensitivity != "xtx" && sensitivity != "none" && sensitivity != "fisher")
    return fail("--sensitivity must be fisher, xtx or none, not '" +
                sensitivity + "'");
  if (solver != "exact" && solver != "lloyd")
    return fail("--kmeans must be exact or lloyd, not '" + solver + "'");
  options.sensitivity = sensitivity;
  options.solver = solver;
  if (table != "f32" && table != "f16")
    return fail("--lut must be f32 or f16, not '" + table + "'");
  if (table != "f32" && method != "squeezellm")
    return fail("--lut applies to --method squeezellm");
  options.table = table;
  options.outliers = outliers;
  options.sensitive = sensitive;
  options.sequential = sequential;
  options.nsamples = nsamples;
  options.seqlen = seqlen;
  options.seed = seed;
  std::string error;
  if (!qforge::parseTargets(target, options.targets, error))
    return fail(error);
  for (StringRef spec : shapes) {
    auto [name, dims] = spec.split('=');
    std::vector<int64_t> shape;
    SmallVector<StringRef> parts;
    dims.split(parts, 'x');
    for (StringRef d : parts) {
      int64_t v;
      if (d.getAsInteger(10, v) || v <= 0)
        return fail("bad --shape '" + spec.str() + "' (expected name=1x256)");
      shape.push_back(v);
    }
    if (name.empty() || shape.empty())
      return fail("bad --shape '" + spec.str() + "' (expected name=1x256)");
    options.import.shapes[name.str()] = shape;
  }
  if (!qforge::compileModel(options, error))
    return fail(error);
  return 0;
}
