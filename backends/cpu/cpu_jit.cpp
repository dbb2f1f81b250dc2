#include "backends/cpu/cpu_jit.h"

#include <llvm/ExecutionEngine/Orc/ExecutionUtils.h>
#include <llvm/ExecutionEngine/Orc/LLJIT.h>
#include <llvm/Support/MemoryBuffer.h>

#include <atomic>
#include <map>
#include <mutex>
#include <string>

#include "backends/cpu/llvm_host.h"
#include "support/error.h"

namespace moat::backends::cpu {

namespace {

class JitImpl;

class LibraryImpl final : public JitLibrary {
 public:
  LibraryImpl(std::shared_ptr<JitImpl> jit, llvm::orc::JITDylib& dylib) : jit_(std::move(jit)), dylib_(dylib) {}
  ~LibraryImpl() override;

  KernelFn find(std::string_view name) const override {
    auto it = kernels_.find(std::string(name));
    return it == kernels_.end() ? nullptr : it->second;
  }

  std::map<std::string, KernelFn> kernels_;

 private:
  std::shared_ptr<JitImpl> jit_;
  llvm::orc::JITDylib& dylib_;
};

class JitImpl final : public CpuJit, public std::enable_shared_from_this<JitImpl> {
 public:
  JitImpl() {
    host_target();  // initialises the native target
    auto jit = llvm::orc::LLJITBuilder().create();
    if (!jit) internal_error_at(__FILE__, __LINE__, "cannot create the ORC JIT: " + llvm::toString(jit.takeError()));
    jit_ = std::move(*jit);
    // Link errors arrive here, not in lookup()'s error: keep them for the message.
    jit_->getExecutionSession().setErrorReporter([this](llvm::Error error) {
      std::lock_guard<std::mutex> lock(mutex_);
      session_errors_ += (session_errors_.empty() ? "" : "; ") + llvm::toString(std::move(error));
    });
  }

  ~JitImpl() override = default;

  std::unique_ptr<JitLibrary> load(const Artifact& binary) override {
    std::string label = binary.kernels.empty() ? std::string("(no kernels listed)") : join(binary.kernels, ", ");
    if (binary.format != "o")
      user_error("the CPU device loads host object files (format \"o\"), not \"", binary.format,
                 "\" (kernels ", label, "); compile the source first");
    llvm::orc::ExecutionSession& session = jit_->getExecutionSession();
    llvm::orc::JITDylib& dylib = session.createBareJITDylib(cat("moat.module.", next_id_.fetch_add(1)));
    auto library = std::make_unique<LibraryImpl>(shared_from_this(), dylib);  // removes dylib on error too
    auto process = llvm::orc::DynamicLibrarySearchGenerator::GetForCurrentProcess(
        jit_->getDataLayout().getGlobalPrefix());
    if (!process) fail("cannot search the process for symbols", label, process.takeError());
    dylib.addGenerator(std::move(*process));
    auto buffer = llvm::MemoryBuffer::getMemBufferCopy(
        llvm::StringRef(reinterpret_cast<const char*>(binary.bytes.data()), binary.bytes.size()), label);
    if (llvm::Error error = jit_->addObjectFile(dylib, std::move(buffer)))
      fail("cannot load the object file", label, std::move(error));
    for (const std::string& name : binary.kernels) {
      auto symbol = jit_->lookup(dylib, name);
      if (!symbol) fail(cat("cannot link kernel '", name, "'"), label, symbol.takeError());
      library->kernels_[name] = reinterpret_cast<KernelFn>(static_cast<uintptr_t>(symbol->getAddress()));
    }
    return library;
  }

  void unload(llvm::orc::JITDylib& dylib) {
    if (llvm::Error error = jit_->getExecutionSession().removeJITDylib(dylib)) llvm::consumeError(std::move(error));
  }

 private:
  [[noreturn]] void fail(const std::string& what, const std::string& label, llvm::Error error) {
    std::string message = llvm::toString(std::move(error));
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (!session_errors_.empty()) message += " (" + session_errors_ + ")";
      session_errors_.clear();
    }
    user_error("CPU JIT: ", what, " (kernels ", label, "): ", message);
  }

  std::unique_ptr<llvm::orc::LLJIT> jit_;
  std::atomic<uint64_t> next_id_{0};
  std::mutex mutex_;
  std::string session_errors_;  // guarded by mutex_
};

LibraryImpl::~LibraryImpl() { jit_->unload(dylib_); }

}  // namespace

std::shared_ptr<CpuJit> make_cpu_jit() { return std::make_shared<JitImpl>(); }

}  // namespace moat::backends::cpu
