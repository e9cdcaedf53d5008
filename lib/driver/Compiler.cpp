//===- Compiler.cpp - ONNX model to .qfm module -----------------*- C++ -*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "qforge/Compiler/Compiler.h"

#include "passes/Calibrate.h"
#include "passes/Passes.h"
#include "passes/WeightRewrite.h"
#include "qforge/Codegen/SharedObject.h"
#include "qforge/Runtime/QFM.h"
#include "qforge/Runtime/Runtime.h"

#include "mlir/Dialect/GPU/IR/GPUDialect.h"
#include "mlir/IR/AsmState.h"
#include "mlir/IR/BuiltinAttributes.h"
#include "mlir/IR/Diagnostics.h"
#include "mlir/IR/DialectResourceBlobManager.h"
#include "mlir/Parser/Parser.h"
#include "mlir/Pass/PassManager.h"
#include "mlir/Target/LLVMIR/Dialect/All.h"
#include "mlir/Transforms/Passes.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/FileUtilities.h"
#include "llvm/Support/FormatVariadic.h"
#include "llvm/Support/Path.h"
#include "llvm/Support/raw_ostream.h"

#include <cstdio>
#include <cstdlib>
#include <map>

using namespace mlir;

namespace qforge {

bool parseTargets(StringRef text, std::vector<CompileTarget> &targets,
                  std::string &error) {
  targets.clear();
  SmallVector<StringRef> parts;
  text.split(parts, ',', -1, /*KeepEmpty=*/false);
  for (StringRef part : parts) {
    part = part.trim();
    if (part == "cpu") {
      targets.push_back({"cpu", ""});
    } else if (part.consume_front("cuda")) {
      std::string chip = part.consume_front(":") ? part.str() : "sm_80";
      if (chip != "sm_80" && chip != "sm_86" && chip != "sm_89" &&
          chip != "sm_90") {
        error = "unsupported CUDA architecture '" + chip +
                "' (sm_80, sm_86, sm_89, sm_90)";
        return false;
      }
      targets.push_back({"cuda", chip});
    } else {
      error =
          "unknown target '" + part.str() + "' (expected cpu or cuda:sm_XX)";
      return false;
    }
  }
  if (targets.empty()) {
    error = "no target given";
    return false;
  }
  return true;
}

namespace {

/// Printing flags for IR shown to people: large constants elided.
OpPrintingFlags readableFlags() {
  return OpPrintingFlags().elideLargeElementsAttrs(16).elideLargeResourceString(
      64);
}

/// Writes the IR after every pass to DIR/NN-<pass>.mlir, numbered in pipeline
/// order.
class DumpIRConfig : public PassManager::IRPrinterConfig {
public:
  DumpIRConfig(std::string dir, unsigned &counter)
      : IRPrinterConfig(/*printModuleScope=*/true,
                        /*printAfterOnlyOnChange=*/false,
                        /*printAfterOnlyOnFailure=*/false, readableFlags()),
        dir(std::move(dir)), counter(counter) {}

  void printAfterIfEnabled(Pass *pass, Operation *op,
                           PrintCallbackFn printCallback) override {
    std::string name = pass->getArgument().str();
    if (name.empty())
      name = pass->getName().str();
    std::error_code ec;
    llvm::raw_fd_ostream os(path(name), ec);
    if (!ec)
      printCallback(os);
  }

  std::string path(StringRef name) {
    char prefix[16];
    std::snprintf(prefix, sizeof(prefix), "%02u-", counter++);
    SmallString<256> p(dir);
    llvm::sys::path::append(p, prefix + name.str() + ".mlir");
    return p.str().str();
  }

private:
  std::string dir;
  unsigned &counter;
};

struct Compilation {
  const CompileOptions &options;
  MLIRContext &ctx;
  unsigned dumpCounter = 0;
  std::string firstError;

  /// Configures IR printing/dumping on `pm`.
  void instrument(PassManager &pm) {
    if (options.printIRAfterAll)
      pm.enableIRPrinting(
          [](Pass *, Operation *) { return false; },
          [](Pass *, Operation *) { return true; }, /*printModuleScope=*/true,
          /*printAfterOnlyOnChange=*/false, /*printAfterOnlyOnFailure=*/false,
          llvm::errs(), readableFlags());
    if (!options.dumpIRDir.empty())
      pm.enableIRPrinting(
          std::make_unique<DumpIRConfig>(options.dumpIRDir, dumpCounter));
  }

  void dumpStage(ModuleOp module, StringRef name) {
    if (options.printIRAfterAll) {
      llvm::errs() << "// -----// IR after " << name << " //----- //\n";
      module->print(llvm::errs(), readableFlags());
      llvm::errs() << "\n";
    }
    if (!options.dumpIRDir.empty()) {
      DumpIRConfig cfg(options.dumpIRDir, dumpCounter);
      std::error_code ec;
      llvm::raw_fd_ostream os(cfg.path(name), ec);
      if (!ec)
        module->print(os, readableFlags());
    }
  }

  bool run(PassManager &pm, ModuleOp module, StringRef stage,
           std::string &error) {
    instrument(pm);
    if (succeeded(pm.run(module)))
      return true;
    error = firstError.empty() ? (stage + " failed").str() : firstError;
    return false;
  }
};

std::string dtypeName(Type t) {
  if (t.isF32())
    return "f32";
  if (t.isF16())
    return "f16";
  if (t.isBF16())
    return "bf16";
  if (t.isF64())
    return "f64";
  if (t.isInteger(1))
    return "i1";
  if (t.isInteger(8))
    return "i8";
  if (t.isInteger(16))
    return "i16";
  if (t.isInteger(32))
    return "i32";
  if (t.isInteger(64))
    return "i64";
  return "";
}

/// The bytes of a weight held in a `dense_resource` blob (row-major, little
/// endian), which lives as long as the context; failure for other attributes.
FailureOr<ArrayRef<char>> weightBlob(ElementsAttr attr) {
  auto res = dyn_cast<DenseResourceElementsAttr>(attr);
  AsmResourceBlob *blob = res ? res.getRawHandle().getBlob() : nullptr;
  if (!blob)
    return failure();
  return blob->getData();
}

/// The row-major little-endian bytes of a dense (not blob) weight constant.
bool weightBytes(ElementsAttr attr, std::vector<uint8_t> &out) {
  auto dense = dyn_cast<DenseElementsAttr>(attr);
  if (!dense)
    return false;
  Type et = dense.getElementType();
  unsigned width = et.getIntOrFloatBitWidth();
  int64_t n = dense.getNumElements();
  if (et.isInteger(1)) {
    for (bool b : dense.getValues<bool>())
      out.push_back(b ? 1 : 0);
    return true;
  }
  if (width % 8)
    return false;
  ArrayRef<char> raw = dense.getRawData();
  if (dense.isSplat()) {
    for (int64_t i = 0; i < n; ++i)
      out.insert(out.end(), raw.begin(), raw.begin() + width / 8);
  } else {
    out.assign(raw.begin(), raw.end());
  }
  return true;
}

nlohmann::json shapeJson(ShapedType t) {
  nlohmann::json s = nlohmann::json::array();
  for (int64_t d : t.getShape())
    s.push_back(ShapedType::isDynamic(d) ? -1 : d);
  return s;
}

} // namespace

/// Steps 3 and 4 of a compilation: the manifest (entry arguments, layer
/// table), native code for every target, and the module file at `path`.
/// MLIR's NVVM target links libdevice (the CUDA math library: expf, sqrtf,
/// ...) from the CUDA toolkit named by CUDA_ROOT, CUDA_HOME or CUDA_PATH.
/// When none is set, the usual install folders are tried and the first with
/// libdevice is named in CUDA_HOME for this process.
static void locateCUDAToolkit() {
  for (const char *var : {"CUDA_ROOT", "CUDA_HOME", "CUDA_PATH"})
    if (const char *value = std::getenv(var); value && *value)
      return;
  for (const char *dir : {"/usr/local/cuda", "/usr/lib/cuda"}) {
    SmallString<128> libdevice(dir);
    llvm::sys::path::append(libdevice, "nvvm", "libdevice", "libdevice.10.bc");
    if (llvm::sys::fs::exists(libdevice)) {
      ::setenv("CUDA_HOME", dir, /*overwrite=*/0);
      return;
    }
  }
}

/// The first function the PTX declares but does not define (a libdevice
/// function left unlinked), or "".
static std::string unresolvedPTXFunction(StringRef ptx) {
  size_t at = ptx.find(".extern .func");
  if (at == StringRef::npos)
    return "";
  StringRef rest = ptx.substr(at);
  size_t name = rest.find("__nv_");
  if (name == StringRef::npos)
    return rest.substr(0, rest.find('\n')).str();
  return rest.substr(name)
      .take_while([](char ch) { return llvm::isAlnum(ch) || ch == '_'; })
      .str();
}

static bool emitModule(Compilation &c, ModuleOp module, const std::string &path,
                       nlohmann::json &layers, std::string &error) {
  const CompileOptions &options = c.options;
  // 3. The manifest: entry arguments and the layer table.
  auto entry = module.lookupSymbol<func::FuncOp>("main");
  if (!entry) {
    error = "the imported module has no @main";
    return false;
  }
  qfm::Writer writer;
  nlohmann::json args = nlohmann::json::array();
  unsigned weightIndex = 0;
  llvm::DenseMap<Value, int64_t> weightSize;
  for (BlockArgument arg : entry.getArguments()) {
    auto type = cast<ShapedType>(arg.getType());
    nlohmann::json a;
    a["dtype"] = dtypeName(type.getElementType());
    a["shape"] = shapeJson(type);
    if (a["dtype"] == "") {
      error = "argument " + std::to_string(arg.getArgNumber()) +
              " has an unsupported element type";
      return false;
    }
    if (auto w = entry.getArgAttrOfType<ElementsAttr>(arg.getArgNumber(),
                                                      "qf.weight")) {
      // A blob goes to the file without a copy (the context outlives the
      // writer); only small dense constants are copied out.
      FailureOr<ArrayRef<char>> blob = weightBlob(w);
      std::vector<uint8_t> bytes;
      if (failed(blob) && !weightBytes(w, bytes)) {
        error = "cannot read the data of weight argument " +
                std::to_string(arg.getArgNumber());
        return false;
      }
      std::string section = "weight." + std::to_string(weightIndex++);
      a["role"] = "weight";
      auto name =
          entry.getArgAttrOfType<StringAttr>(arg.getArgNumber(), "qf.name");
      a["name"] = name ? name.str() : section;
      a["section"] = section;
      if (succeeded(blob)) {
        weightSize[arg] = blob->size();
        writer.addSectionView(section, blob->data(), blob->size());
      } else {
        weightSize[arg] = bytes.size();
        writer.addSection(section, std::move(bytes));
      }
    } else {
      auto name =
          entry.getArgAttrOfType<StringAttr>(arg.getArgNumber(), "qf.name");
      a["role"] = "input";
      a["name"] =
          name ? name.str() : "arg" + std::to_string(arg.getArgNumber());
    }
    args.push_back(a);
  }
  for (unsigned i = 0; i < entry.getNumResults(); ++i) {
    auto type = cast<ShapedType>(entry.getResultTypes()[i]);
    auto name = entry.getResultAttrOfType<StringAttr>(i, "qf.name");
    args.push_back({{"role", "output"},
                    {"name", name ? name.str() : "out" + std::to_string(i)},
                    {"dtype", dtypeName(type.getElementType())},
                    {"shape", shapeJson(type)}});
  }
  layers = nlohmann::json::array();
  entry.walk([&](qf::FusedMatmulOp op) {
    int64_t bytes = 0;
    for (Value v : op->getOperands())
      bytes += weightSize.lookup(v);
    auto name = op->getAttrOfType<StringAttr>("qf.layer");
    auto err = op->getAttrOfType<FloatAttr>("qf.weight_error");
    auto outErr = op->getAttrOfType<FloatAttr>("qf.output_error");
    qf::SchemeAttr s = op.getScheme();
    layers.push_back({{"name", name ? name.str() : "?"},
                      {"method", options.method},
                      {"bits", s.getBits()},
                      {"group_size", s.getGroupSize()},
                      {"rows", op.getN()},
                      {"cols", op.getK()},
                      {"bytes", bytes},
                      {"error", err ? err.getValueAsDouble() : 0.0}});
    if (outErr)
      layers.back()["output_error"] = outErr.getValueAsDouble();
    if (auto count = op->getAttrOfType<IntegerAttr>("qf.outlier_count"))
      layers.back()["outliers"] = count.getInt();
    if (s.isCodebook())
      layers.back()["scheme"] = "codebook";
  });

  // 4. Lower and emit native code per target.
  nlohmann::json targets = nlohmann::json::array();
  for (const CompileTarget &target : options.targets) {
    if (target.kind == "cuda")
      locateCUDAToolkit();
    OwningOpRef<ModuleOp> lowered = cast<ModuleOp>(module->clone());
    PassManager pm(&c.ctx);
    LoweringOptions lowering;
    lowering.target = target.kind;
    if (!target.chip.empty())
      lowering.chip = target.chip;
    if (target.kind == "cpu") {
      lowering.vectorWidth = codegen::preferredVectorWidth(options.cpu);
      lowering.gemvMaxRows = options.gemvMaxRows;
      lowering.int8Activations =
          options.activations == "int8" && lowering.vectorWidth == 16 &&
          codegen::cpuHasFeature(options.cpu, "avx512vnni");
      lowering.emulateCuda = options.emulateCuda;
    }
    buildLoweringPipeline(pm, lowering);
    if (!c.run(pm, *lowered, "lowering for " + target.kind, error))
      return false;
    nlohmann::json t{{"kind", target.kind}};
    if (target.kind == "cuda") {
      std::string ptx;
      lowered->walk([&](gpu::BinaryOp binary) {
        for (Attribute obj : binary.getObjects())
          if (auto o = dyn_cast<gpu::ObjectAttr>(obj))
            ptx += o.getObject().getValue().str();
      });
      if (std::string missing = unresolvedPTXFunction(ptx); !missing.empty()) {
        error = "CUDA target " + target.chip + ": kernels call " + missing +
                " from libdevice, and no CUDA toolkit with "
                "nvvm/libdevice/libdevice.10.bc was found (set CUDA_HOME)";
        return false;
      }
      std::string section = "ptx." + target.chip;
      writer.addSection(section, ptx.data(), ptx.size());
      t["arch"] = target.chip;
      t["ptx"] = section;
      if (!options.emitPTXDir.empty()) {
        SmallString<256> p(options.emitPTXDir);
        llvm::sys::fs::create_directories(p);
        llvm::sys::path::append(p, "kernels." + target.chip + ".ptx");
        std::error_code ec;
        llvm::raw_fd_ostream os(p, ec);
        if (ec) {
          error = p.str().str() + ": " + ec.message();
          return false;
        }
        os << ptx;
      }
    }
    codegen::NativeOptions native;
    native.cpu = options.cpu;
    native.optLevel = options.optLevel;
    codegen::SharedObject so;
    // Weights and inputs, then the results area when there are outputs.
    unsigned numOutputs = entry.getNumResults();
    unsigned numParams = args.size() - numOutputs + (numOutputs ? 1 : 0);
    if (!codegen::buildSharedObject(*lowered, "main", numParams, numOutputs > 0,
                                    native, so, error)) {
      error = "native code for " + target.kind + ": " + error;
      return false;
    }
    std::string section = target.kind == "cuda" ? "code.cuda." + target.chip
                                                : "code." + target.kind;
    writer.addSection(section, so.bytes.data(), so.bytes.size());
    t["library"] = section;
    t["symbol"] = so.symbol;
    if (target.kind == "cpu") {
      t["cpu"] = so.cpu;
      t["features"] = so.features;
      t["vector_width"] = lowering.vectorWidth.getValue();
      t["gemv_activations"] = lowering.int8Activations ? "int8" : "f32";
      t["gemm_activations"] = lowering.int8Activations ? "int8" : "f32";
      t["buffers"] = "runtime-pool";
      if (options.emulateCuda)
        t["emulates"] = "cuda-kernels";
    }
    targets.push_back(t);
  }

  nlohmann::json manifest{
      {"format_version", 1},
      {"producer", "qforge 0.1.0"},
      {"source", llvm::sys::path::filename(options.input).str()},
      {"entry", {{"name", "main"}, {"args", args}}},
      {"targets", targets},
      {"layers", layers}};
  writer.setManifest(manifest);
  if (!writer.write(path, error))
    return false;
  return true;
}

void installActivationRunner() {
  setActivationRunner([](ModuleOp module,
                         const std::vector<std::vector<int64_t>> &windows,
                         ActivationSink sink, RunProgress progress,
                         std::string &error) -> bool {
    // Compile as a float CPU module into a temporary file.
    CompileOptions options;
    options.method = "none";
    options.input = "calibration";
    // LLVM -O1: half the optimization time of -O3 for the model (13 s of 30
    // s for the bundled llama), and the module runs as fast.
    options.optLevel = 1;
    Compilation c{options, *module.getContext()};
    // Lowering a copy of a model is an internal step: only errors count.
    ScopedDiagnosticHandler diagnostics(
        module.getContext(), [&](Diagnostic &d) {
          if (d.getSeverity() == DiagnosticSeverity::Error &&
              c.firstError.empty())
            c.firstError = "calibration: " + d.str();
          return success();
        });
    PassManager pm(module.getContext());
    // Stages quantized so far (sequential calibration) run fused.
    pm.addNestedPass<func::FuncOp>(createFuseDequantMatmulPass());
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createExternalizeWeightsPass());
    SmallString<128> path;
    if (std::error_code ec =
            llvm::sys::fs::createTemporaryFile("qforge-calib", "qfm", path)) {
      error = "calibration: cannot create a temporary file: " + ec.message();
      return false;
    }
    llvm::FileRemover remover(path);
    nlohmann::json layers;
    if (!c.run(pm, module, "calibration: preparing the model", error) ||
        !emitModule(c, module, path.str().str(), layers, error))
      return false;

    std::shared_ptr<rt::Module> loaded =
        rt::Module::load(path.str().str(), error);
    if (!loaded)
      return false;
    std::unique_ptr<rt::Session> session =
        rt::Session::create(loaded, rt::DeviceKind::CPU, error);
    if (!session)
      return false;
    std::vector<const qfm::ArgInfo *> inputs = loaded->inputs();
    if (inputs.size() != 1 || inputs[0]->shape.size() != 2 ||
        (inputs[0]->dtype != qfm::DType::I64 &&
         inputs[0]->dtype != qfm::DType::I32)) {
      error = "calibration needs a model whose one non-weight input is byte "
              "tokens, int64 or int32 [B, T]";
      return false;
    }
    const qfm::ArgInfo &ids = *inputs[0];
    std::vector<const qfm::ArgInfo *> outputs = loaded->outputs();
    // A static batch B takes the windows B at a time; the last call is
    // filled up with its first window, and only the rows of real windows
    // (batch-major, so the first ones) reach the sink.
    const size_t batch = ids.shape[0] > 0 ? size_t(ids.shape[0]) : 1;
    size_t done = 0;
    for (size_t first = 0; first < windows.size(); first += batch) {
      size_t real = std::min(batch, windows.size() - first);
      int64_t n = static_cast<int64_t>(windows[first].size());
      if (ids.shape[1] >= 0 && ids.shape[1] != n) {
        error = "input '" + ids.name + "' has the static length " +
                std::to_string(ids.shape[1]) + "; calibrate with seqlen " +
                std::to_string(ids.shape[1]) + " or keep it dynamic";
        return false;
      }
      rt::HostTensor tokens(ids.dtype, {int64_t(batch), n});
      for (size_t w = 0; w < batch; ++w) {
        const std::vector<int64_t> &window =
            windows[first + (w < real ? w : 0)];
        for (int64_t i = 0; i < n; ++i) {
          int64_t at = int64_t(w) * n + i;
          if (ids.dtype == qfm::DType::I64)
            tokens.dataAs<int64_t>()[at] = window[i];
          else
            tokens.dataAs<int32_t>()[at] = static_cast<int32_t>(window[i]);
        }
      }
      rt::TensorMap in, out;
      in.emplace(ids.name, std::move(tokens));
      if (!session->run(in, out, error))
        return false;
      for (auto [i, info] : llvm::enumerate(outputs)) {
        const rt::HostTensor &t = out.at(info->name);
        if (t.dtype != qfm::DType::F32 || t.shape.empty() ||
            t.shape.back() == 0)
          continue;
        int64_t cols = t.shape.back();
        int64_t rows = t.numElements() / cols;
        sink(i, t.dataAs<float>(), rows / int64_t(batch) * int64_t(real), cols);
      }
      done += real;
      progress(done);
    }
    return true;
  });
}

/// Attaches qf-fisher's `qf.fisher` to the linear weights of `module`. The
/// gradient function needs static shapes: when the token input is dynamic, the
/// ONNX model is imported again with the length --seqlen, qf-fisher runs on
/// that copy, and its attributes move to `module`'s weights by layer name.
static bool attachFisher(Compilation &c, ModuleOp module, std::string &error) {
  const CompileOptions &options = c.options;
  auto main = module.lookupSymbol<func::FuncOp>("main");
  auto ids = main && main.getNumArguments()
                 ? dyn_cast<RankedTensorType>(main.getArgumentTypes()[0])
                 : RankedTensorType();
  OwningOpRef<ModuleOp> copy;
  ModuleOp target = module;
  if (main && ids && !ids.hasStaticShape()) {
    auto name = main.getArgAttrOfType<StringAttr>(0, "qf.name");
    if (StringRef(options.input).ends_with(".mlir") || !name) {
      error = "--sensitivity fisher needs a token input of static shape: "
              "import the model with qforge-import --shape input_ids=1xT";
      return false;
    }
    importer::ImportOptions io = options.import;
    io.shapes[name.getValue().str()] = {1, options.seqlen};
    copy = importer::importONNXFile(c.ctx, options.input, io, error);
    if (!copy)
      return false;
    target = *copy;
  }
  PassManager pm(&c.ctx);
  FisherPassOptions fisher;
  fisher.calib = options.calib;
  fisher.nsamples = options.nsamples;
  fisher.seed = options.seed;
  fisher.progress = !options.quiet;
  pm.addPass(createFisherPass(fisher));
  if (!c.run(pm, target, "Fisher information", error))
    return false;
  if (target == module)
    return true;
  std::map<std::string, Attribute> byName;
  for (const LinearWeight &l :
       findConstantLinears(target.lookupSymbol<func::FuncOp>("main")))
    byName[l.name] = l.constOp->getAttr("qf.fisher");
  for (const LinearWeight &l : findConstantLinears(main)) {
    Attribute f = byName[l.name];
    if (!f) {
      error = "layer '" + l.name +
              "': the static-shape import has no such weight for the Fisher "
              "information";
      return false;
    }
    l.constOp->setAttr("qf.fisher", f);
  }
  return true;
}

bool compileModel(const CompileOptions &options, std::string &error) {
  DialectRegistry registry;
  registerDialects(registry);
  importer::registerImporterDialects(registry);
  registerAllToLLVMIRTranslations(registry);
  MLIRContext ctx(registry);
  ctx.loadAllAvailableDialects();
  if (options.printIRAfterAll || !options.dumpIRDir.empty())
    ctx.disableMultithreading();

  Compilation c{options, ctx};
  ScopedDiagnosticHandler diagnostics(&ctx, [&](Diagnostic &diag) {
    if (diag.getSeverity() != DiagnosticSeverity::Error ||
        !c.firstError.empty())
      return success();
    std::string loc;
    llvm::raw_string_ostream os(loc);
    if (auto name = dyn_cast<NameLoc>(diag.getLocation()))
      os << "node '" << name.getName().getValue() << "': ";
    c.firstError = loc + diag.str();
    return success();
  });

  if (!options.dumpIRDir.empty()) {
    if (std::error_code ec =
            llvm::sys::fs::create_directories(options.dumpIRDir)) {
      error = options.dumpIRDir + ": cannot create directory: " + ec.message();
      return false;
    }
  }

  // 1. Import ONNX, or read graph IR that qforge-import (or a person) wrote.
  OwningOpRef<ModuleOp> module;
  if (StringRef(options.input).ends_with(".mlir")) {
    if (!llvm::sys::fs::exists(options.input)) {
      error = options.input + ": cannot open: No such file or directory";
      return false;
    }
    module = parseSourceFile<ModuleOp>(options.input, &ctx);
    if (!module) {
      error = options.input + ": not valid graph IR" +
              (c.firstError.empty() ? std::string() : ": " + c.firstError);
      return false;
    }
  } else {
    module =
        importer::importONNXFile(ctx, options.input, options.import, error);
    if (!module)
      return false;
  }
  c.dumpStage(*module, "import");

  // 2. Quantize, fuse, externalize weights.
  {
    PassManager pm(&ctx);
    bool sensitivityUsed =
        options.method == "squeezellm" || options.sensitive > 0;
    bool needsXtx = sensitivityUsed && options.sensitivity == "xtx";
    bool needsFisher = sensitivityUsed && options.sensitivity == "fisher";
    if ((options.method == "gptq" || options.method == "awq" || needsXtx ||
         needsFisher) &&
        options.calib.empty()) {
      error = (sensitivityUsed ? "--sensitivity " + options.sensitivity
                               : "--method " + options.method) +
              " needs calibration text: pass --calib FILE (e.g. "
              "models/data/calib.txt)";
      return false;
    }
    if (!(options.outliers >= 0 && options.outliers < 100 &&
          options.sensitive >= 0 && options.sensitive < 100)) {
      error = "--outliers and --sensitive are percentages in [0, 100)";
      return false;
    }
    if ((options.outliers > 0 || options.sensitive > 0) &&
        options.method == "none") {
      error = "--outliers and --sensitive split weights for a quantization "
              "method; --method none keeps every weight in float";
      return false;
    }
    if (options.sequential && options.method != "gptq") {
      error = "--sequential applies to --method gptq";
      return false;
    }
    if (!options.calib.empty())
      installActivationRunner();
    if (needsFisher && !attachFisher(c, *module, error))
      return false;
    CalibratePassOptions calibrate;
    if (!options.calib.empty()) {
      calibrate.calib = options.calib;
      calibrate.nsamples = options.nsamples;
      calibrate.seqlen = options.seqlen;
      calibrate.seed = options.seed;
      calibrate.progress = !options.quiet;
      if (!options.sequential)
        pm.addPass(createCalibratePass(calibrate));
    }
    // The scheme options every method shares.
    auto scheme = [&](auto pass) {
      pass.bits = options.bits;
      pass.groupSize = options.groupSize;
      pass.symmetric = options.symmetric;
      return pass;
    };
    if (options.outliers > 0 || options.sensitive > 0) {
      SplitOutliersPassOptions split;
      split.outliers = options.outliers;
      split.sensitive = options.sensitive;
      split.sensitivity = options.sensitivity;
      pm.addNestedPass<func::FuncOp>(createSplitOutliersPass(split));
    }
    if (options.method == "rtn") {
      QuantizeRTNPassOptions rtn = scheme(QuantizeRTNPassOptions());
      rtn.clip = options.clip;
      pm.addNestedPass<func::FuncOp>(createQuantizeRTNPass(rtn));
    } else if (options.method == "gptq") {
      QuantizeGPTQPassOptions gptq = scheme(QuantizeGPTQPassOptions());
      gptq.actOrder = options.actOrder;
      gptq.progress = !options.quiet;
      if (!options.sequential) {
        pm.addNestedPass<func::FuncOp>(createQuantizeGPTQPass(gptq));
      } else {
        // One (calibrate, quantize) pair per stage of linears.
        calibrate.nextStage = true;
        gptq.onlyCalibrated = true;
        unsigned stages = 0;
        if (auto main = module->lookupSymbol<func::FuncOp>("main")) {
          std::vector<LinearWeight> linears = findConstantLinears(main);
          for (unsigned stage : linearStages(main, linears))
            stages = std::max(stages, stage + 1);
        }
        for (unsigned i = 0; i < stages; ++i) {
          pm.addPass(createCalibratePass(calibrate));
          pm.addNestedPass<func::FuncOp>(createQuantizeGPTQPass(gptq));
        }
      }
    } else if (options.method == "awq") {
      QuantizeAWQPassOptions awq = scheme(QuantizeAWQPassOptions());
      awq.progress = !options.quiet;
      pm.addNestedPass<func::FuncOp>(createQuantizeAWQPass(awq));
    } else if (options.method == "squeezellm") {
      QuantizeSqueezeLLMPassOptions squeeze;
      squeeze.bits = options.bits;
      squeeze.sensitivity = options.sensitivity;
      squeeze.solver = options.solver;
      squeeze.table = options.table;
      squeeze.progress = !options.quiet;
      pm.addNestedPass<func::FuncOp>(createQuantizeSqueezeLLMPass(squeeze));
    } else if (options.method != "none") {
      error = "unknown method '" + options.method +
              "' (none, rtn, gptq, awq, squeezellm)";
      return false;
    }
    pm.addNestedPass<func::FuncOp>(createFuseDequantMatmulPass());
    pm.addPass(createCanonicalizerPass());
    pm.addPass(createExternalizeWeightsPass());
    if (!c.run(pm, *module, "quantization", error))
      return false;
  }

  // 3-4. Manifest, native code, module file.
  nlohmann::json layers;
  if (!emitModule(c, *module, options.output, layers, error))
    return false;

  if (!options.quiet) {
    // w-error: ‖W − Ŵ‖/‖W‖; out-error: ‖XWᵀ − XŴᵀ‖/‖XWᵀ‖ on the
    // calibration inputs (with --calib).
    llvm::outs() << llvm::format("%-28s %-10s %4s %6s %12s %10s %10s %8s\n",
                                 "layer", "method", "bits", "group", "bytes",
                                 "w-error", "out-error", "outliers");
    for (const auto &l : layers) {
      std::string outErr =
          l.contains("output_error")
              ? llvm::formatv("{0:e3}", l["output_error"].get<double>()).str()
              : "-";
      std::string group = l.contains("scheme")
                              ? "lut"
                              : std::to_string(l["group_size"].get<int64_t>());
      long long count =
          l.contains("outliers") ? l["outliers"].get<int64_t>() : 0;
      llvm::outs() << llvm::format(
          "%-28s %-10s %4d %6s %12lld %10.3e %10s %8lld\n",
          l["name"].get<std::string>().c_str(),
          l["method"].get<std::string>().c_str(), l["bits"].get<int>(),
          group.c_str(), (long long)l["bytes"].get<int64_t>(),
          l["error"].get<double>(), outErr.c_str(), count);
    }
    llvm::outs() << "wrote " << options.output << "\n";
  }
  return true;
}

} // namespace qforge
