//===- SharedObject.cpp - LLVM dialect to a native shared object -*- C++
//-*-===//
//
// Part of qforge.
//
//===----------------------------------------------------------------------===//

#include "qforge/Codegen/SharedObject.h"

#include "mlir/ExecutionEngine/OptUtils.h"
#include "mlir/Target/LLVMIR/Export.h"
#include "llvm/ADT/ScopeExit.h"

#include "llvm/IR/IRBuilder.h"
#include "llvm/IR/LegacyPassManager.h"
#include "llvm/IR/Module.h"
#include "llvm/MC/MCSubtargetInfo.h"
#include "llvm/MC/TargetRegistry.h"
#include "llvm/Support/FileSystem.h"
#include "llvm/Support/MemoryBuffer.h"
#include "llvm/Support/Program.h"
#include "llvm/Support/TargetSelect.h"
#include "llvm/Support/raw_ostream.h"
#include "llvm/Target/TargetMachine.h"
#include "llvm/TargetParser/Host.h"
#include <algorithm>

#ifndef QF_LINKER_PATH
#define QF_LINKER_PATH "ld.lld"
#endif
#ifndef QF_OMP_DIR
#define QF_OMP_DIR "/usr/lib/llvm-22/lib"
#endif

using namespace mlir;

namespace qforge::codegen {

/// void qf_entry_<entry>(void **args): calls _mlir_ciface_<entry> with the n
/// descriptor pointers of `args`. When the entry returns results, MLIR's C
/// interface takes the pointer to the results first; the packed form takes it
/// last, after the arguments.
static bool addPackedEntry(llvm::Module &m, StringRef entry, unsigned numArgs,
                           bool hasResults, std::string &symbol,
                           std::string &error) {
  llvm::Function *ciface = m.getFunction(("_mlir_ciface_" + entry).str());
  if (!ciface || ciface->arg_size() != numArgs) {
    error = "entry function '" + entry.str() + "' has no C interface with " +
            std::to_string(numArgs) + " arguments";
    return false;
  }
  llvm::LLVMContext &ctx = m.getContext();
  auto *ptr = llvm::PointerType::getUnqual(ctx);
  symbol = ("qf_entry_" + entry).str();
  auto *fn = llvm::Function::Create(
      llvm::FunctionType::get(llvm::Type::getVoidTy(ctx), {ptr}, false),
      llvm::GlobalValue::ExternalLinkage, symbol, m);
  llvm::IRBuilder<> b(llvm::BasicBlock::Create(ctx, "entry", fn));
  llvm::SmallVector<llvm::Value *> args;
  for (unsigned i = 0; i < numArgs; ++i) {
    llvm::Value *slot = b.CreateConstInBoundsGEP1_64(ptr, fn->getArg(0), i);
    args.push_back(b.CreateLoad(ptr, slot));
  }
  if (hasResults)
    std::rotate(args.begin(), args.end() - 1, args.end());
  b.CreateCall(ciface, args);
  b.CreateRetVoid();
  return true;
}

/// The features the runtime checks, when the target machine enables them.
static std::vector<std::string> runtimeFeatures(const llvm::TargetMachine &tm) {
  static const char *known[] = {"avx2",     "fma",        "avx512f", "avx512bw",
                                "avx512vl", "avx512vnni", "f16c",    "bmi2"};
  std::vector<std::string> out;
  const llvm::MCSubtargetInfo *sti = tm.getMCSubtargetInfo();
  for (const char *name : known)
    if (sti->checkFeatures(("+" + StringRef(name)).str()))
      out.push_back(name);
  return out;
}

/// A target machine for the host triple and `cpuName` ("native": the host CPU
/// with the features it reports).
static std::unique_ptr<llvm::TargetMachine>
createTargetMachine(const std::string &cpuName, std::string &error) {
  llvm::InitializeNativeTarget();
  llvm::InitializeNativeTargetAsmPrinter();
  llvm::Triple triple(llvm::sys::getDefaultTargetTriple());
  std::string lookupError;
  const llvm::Target *target =
      llvm::TargetRegistry::lookupTarget(triple, lookupError);
  if (!target) {
    error = "no LLVM target for " + triple.str() + ": " + lookupError;
    return nullptr;
  }
  std::string cpu = cpuName;
  std::string features;
  if (cpu == "native") {
    cpu = llvm::sys::getHostCPUName().str();
    llvm::SubtargetFeatures f;
    for (const auto &[name, on] : llvm::sys::getHostCPUFeatures())
      f.AddFeature(name, on);
    features = f.getString();
  }
  llvm::TargetOptions targetOptions;
  // Constructors (a CUDA target's one loads its PTX) go to .init_array, which
  // the dynamic loader runs; LLVM's default, .ctors, only runs with the C
  // runtime's start files, which the object is not linked with.
  targetOptions.UseInitArray = true;
  std::unique_ptr<llvm::TargetMachine> tm(target->createTargetMachine(
      triple, cpu, features, targetOptions, llvm::Reloc::PIC_, std::nullopt,
      llvm::CodeGenOptLevel::Aggressive));
  if (!tm)
    error = "cannot create a target machine for CPU '" + cpu + "'";
  return tm;
}

bool cpuHasFeature(const std::string &cpu, const std::string &feature) {
  std::string error;
  std::unique_ptr<llvm::TargetMachine> tm = createTargetMachine(cpu, error);
  return tm && tm->getMCSubtargetInfo()->checkFeatures("+" + feature);
}

int64_t preferredVectorWidth(const std::string &cpu) {
  return cpuHasFeature(cpu, "avx512f") ? 16 : 8;
}

bool buildSharedObject(ModuleOp module, StringRef entry, unsigned numArgs,
                       bool hasResults, const NativeOptions &options,
                       SharedObject &out, std::string &error) {

  llvm::LLVMContext ctx;
  std::unique_ptr<llvm::Module> llvmModule =
      translateModuleToLLVMIR(module, ctx);
  if (!llvmModule) {
    error = "translation to LLVM IR failed";
    return false;
  }
  if (!addPackedEntry(*llvmModule, entry, numArgs, hasResults, out.symbol,
                      error))
    return false;

  // The runtime's buffer pool hands out blocks that alias nothing live, as
  // malloc does; saying so lets LLVM keep a reduction's accumulator in a
  // register and vectorize loops that read one buffer and write another.
  for (StringRef name :
       {"_mlir_memref_to_llvm_alloc", "_mlir_memref_to_llvm_aligned_alloc"})
    if (llvm::Function *alloc = llvmModule->getFunction(name))
      alloc->addRetAttr(llvm::Attribute::NoAlias);

  std::unique_ptr<llvm::TargetMachine> tm =
      createTargetMachine(options.cpu, error);
  if (!tm)
    return false;
  llvm::Triple triple = tm->getTargetTriple();
  std::string cpu = tm->getTargetCPU().str();
  llvmModule->setDataLayout(tm->createDataLayout());
  llvmModule->setTargetTriple(triple);
  out.cpu = cpu;
  out.features = runtimeFeatures(*tm);

  auto optimize = makeOptimizingTransformer(options.optLevel, 0, tm.get());
  if (llvm::Error err = optimize(llvmModule.get())) {
    error = "LLVM optimization failed: " + llvm::toString(std::move(err));
    return false;
  }

  // Object file → shared object, through temporary files removed on every path.
  SmallString<128> objPath, soPath;
  if (llvm::sys::fs::createTemporaryFile("qforge", "o", objPath) ||
      llvm::sys::fs::createTemporaryFile("qforge", "so", soPath)) {
    error = "cannot create temporary files";
    return false;
  }
  llvm::scope_exit cleanup([&] {
    llvm::sys::fs::remove(objPath);
    llvm::sys::fs::remove(soPath);
  });
  {
    std::error_code ec;
    llvm::raw_fd_ostream os(objPath, ec);
    if (ec) {
      error = "cannot write " + objPath.str().str() + ": " + ec.message();
      return false;
    }
    llvm::legacy::PassManager pm;
    if (tm->addPassesToEmitFile(pm, os, nullptr,
                                llvm::CodeGenFileType::ObjectFile)) {
      error = "the target cannot emit object files";
      return false;
    }
    pm.run(*llvmModule);
  }
  std::string linker = QF_LINKER_PATH;
  if (!llvm::sys::fs::can_execute(linker)) {
    auto found = llvm::sys::findProgramByName("ld.lld");
    if (!found) {
      error = "linker not found (" + linker + ", ld.lld); install lld";
      return false;
    }
    linker = *found;
  }
  std::string linkError;
  // Parallel loops call LLVM's OpenMP runtime (libomp), found at run time
  // where it was at compile time; a module without them does not need it.
  SmallVector<StringRef> args = {
      linker,    "-shared",     "--no-undefined-version", "-o",    soPath,
      objPath,   "--as-needed", "-L" QF_OMP_DIR,          "-lomp", "-rpath",
      QF_OMP_DIR};
  int rc = llvm::sys::ExecuteAndWait(linker, args, std::nullopt, {}, 0, 0,
                                     &linkError);
  if (rc != 0) {
    error = "linking the shared object failed" +
            (linkError.empty() ? std::string() : ": " + linkError);
    return false;
  }
  auto buffer = llvm::MemoryBuffer::getFile(soPath, /*IsText=*/false);
  if (!buffer) {
    error = "cannot read the linked shared object";
    return false;
  }
  out.bytes.assign((*buffer)->getBufferStart(), (*buffer)->getBufferEnd());
  return true;
}

} // namespace qforge::codegen
