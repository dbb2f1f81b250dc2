#include "backends/cpu/llvm_compiler.h"

#include <llvm/IR/LegacyPassManager.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Analysis/TargetLibraryInfo.h>
#include <llvm/Passes/PassBuilder.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Target/TargetOptions.h>

#include "backends/cpu/llvm_host.h"
#include "backends/cpu/llvm_parse.h"
#include "support/error.h"

namespace moat::backends::cpu {

namespace {

// One module on its way through the pipeline; the context outlives the module.
struct Compilation {
  std::unique_ptr<llvm::LLVMContext> context;
  std::unique_ptr<llvm::Module> module;
  std::unique_ptr<llvm::TargetMachine> machine;
};

std::string kernel_label(const Artifact& source) {
  return source.kernels.empty() ? std::string("(no kernels listed)") : join(source.kernels, ", ");
}

// Each listed kernel is defined with the ABI's signature (kernel_abi.h).
void check_kernels(const llvm::Module& module, const Artifact& source) {
  for (const std::string& name : source.kernels) {
    const llvm::Function* f = module.getFunction(name);
    if (!f || f->isDeclaration())
      user_error("LLVM IR: kernel '", name, "' is not defined in the module (kernels listed: ", kernel_label(source),
                 ")");
    const llvm::FunctionType* type = f->getFunctionType();
    bool abi = type->getReturnType()->isVoidTy() && type->getNumParams() == 4 && !type->isVarArg() &&
               type->getParamType(0)->isPointerTy() && type->getParamType(1)->isPointerTy() &&
               type->getParamType(2)->isIntegerTy(64) && type->getParamType(3)->isIntegerTy(64);
    if (!abi || f->hasLocalLinkage())
      user_error("LLVM IR: kernel '", name, "' must be an external `void (i64* args, i64* grid, i64 group_begin, ",
                 "i64 group_end)` (the CPU kernel ABI, backends/cpu/kernel_abi.h)");
  }
}

std::unique_ptr<llvm::TargetMachine> host_machine() {
  const HostTarget& host = host_target();
  std::string error;
  const llvm::Target* target = llvm::TargetRegistry::lookupTarget(host.triple, error);
  MOAT_INTERNAL_CHECK(target, "no LLVM target for the host triple ", host.triple, ": ", error);
  llvm::TargetOptions options;
  std::unique_ptr<llvm::TargetMachine> machine(target->createTargetMachine(
      host.triple, host.cpu, host.features, options, llvm::Reloc::PIC_, llvm::CodeModel::Small,
      llvm::CodeGenOpt::Aggressive));
  MOAT_INTERNAL_CHECK(machine, "LLVM cannot create a target machine for ", host.triple, " ", host.cpu);
  return machine;
}

void optimise(llvm::Module& module, llvm::TargetMachine& machine) {
  llvm::LoopAnalysisManager lam;
  llvm::FunctionAnalysisManager fam;
  llvm::CGSCCAnalysisManager cgam;
  llvm::ModuleAnalysisManager mam;
  llvm::PipelineTuningOptions tuning;
  tuning.LoopVectorization = true;
  tuning.SLPVectorization = true;
  llvm::PassBuilder builder(&machine, tuning);
  // Vectorised math functions (libmvec's) for loops that apply exp, log, sin ... per element.
  llvm::TargetLibraryInfoImpl library{llvm::Triple(module.getTargetTriple())};
  if (host_target().vector_math == "libmvec")
    library.addVectorizableFunctionsFromVecLib(llvm::TargetLibraryInfoImpl::LIBMVEC_X86);
  fam.registerPass([&] { return llvm::TargetLibraryAnalysis(library); });
  builder.registerModuleAnalyses(mam);
  builder.registerCGSCCAnalyses(cgam);
  builder.registerFunctionAnalyses(fam);
  builder.registerLoopAnalyses(lam);
  builder.crossRegisterProxies(lam, fam, cgam, mam);
  llvm::ModulePassManager passes = builder.buildPerModuleDefaultPipeline(llvm::OptimizationLevel::O3);
  passes.run(module, mam);
}

// Parsed, verified, checked against the ABI, retargeted to the host and optimised.
Compilation prepare(const Artifact& source) {
  if (source.format != "ll")
    user_error("the CPU compiler takes LLVM IR text (format \"ll\"), not \"", source.format, "\" (kernels ",
               kernel_label(source), ")");
  Compilation c;
  c.context = std::make_unique<llvm::LLVMContext>();
  std::string error;
  c.module = parse_llvm_ir(*c.context, source.as_text(), error);
  if (!c.module) user_error("LLVM IR of kernel ", kernel_label(source), " is invalid: ", error);
  check_kernels(*c.module, source);

  const HostTarget& host = host_target();
  c.machine = host_machine();
  c.module->setTargetTriple(host.triple);
  c.module->setDataLayout(c.machine->createDataLayout());
  for (llvm::Function& f : *c.module) {
    if (f.isDeclaration()) continue;
    f.addFnAttr("target-cpu", host.cpu);
    f.addFnAttr("target-features", host.features);
  }
  optimise(*c.module, *c.machine);
  return c;
}

}  // namespace

Artifact compile_llvm_ir(const Artifact& source) {
  Compilation c = prepare(source);
  llvm::SmallVector<char, 0> object;
  llvm::raw_svector_ostream out(object);
  llvm::legacy::PassManager passes;
  MOAT_INTERNAL_CHECK(!c.machine->addPassesToEmitFile(passes, out, nullptr, llvm::CGFT_ObjectFile),
                      "LLVM cannot emit an object file for ", host_target().triple);
  passes.run(*c.module);
  Artifact binary;
  binary.format = "o";
  binary.bytes.assign(object.begin(), object.end());
  binary.kernels = source.kernels;
  return binary;
}

std::string optimise_llvm_ir(const Artifact& source) {
  Compilation c = prepare(source);
  std::string text;
  llvm::raw_string_ostream out(text);
  c.module->print(out, nullptr);
  out.flush();
  return text;
}

}  // namespace moat::backends::cpu
