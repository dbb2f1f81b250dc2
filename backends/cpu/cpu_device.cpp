// The host CPU as a Device: buffers are 64-byte-aligned host memory, compile() is
// LLVM (llvm_compiler), load() is ORC (cpu_jit), and a launch runs the kernel over
// the thread pool synchronously (kernel_abi.h).
#include <algorithm>
#include <cstring>
#include <map>
#include <new>

#include "backends/cpu/cpu_backend.h"
#include "backends/cpu/cpu_jit.h"
#include "backends/cpu/kernel_abi.h"
#include "backends/cpu/llvm_compiler.h"
#include "backends/cpu/llvm_host.h"
#include "backends/cpu/thread_pool.h"
#include "backends/device.h"
#include "backends/module_kernels.h"
#include "backends/op_support.h"
#include "support/error.h"

namespace moat::backends {

namespace {

using cpu::KernelFn;

constexpr std::align_val_t kBufferAlignment{64};  // bytes: one cache line, one AVX-512 vector
constexpr int kMaxThreads = 4096;
constexpr int64_t kMaxWorkGroupSize = 1024;          // work-items a kernel iterates per group
constexpr int64_t kLocalMemoryBytes = int64_t{1} << 20;  // per group: a stack array in the kernel
// Launch granularity: one range of groups per thread. Each claim is a fetch_add on one
// cache line that moves between cores (an empty 2-thread launch costs 0.52 us on this
// project's 2-core KVM machine, mostly such moves): a decode step of the demo model (159
// launches) went from 4 claims a thread to 1, 4.9k -> 5.3k tokens/s alone and 15.5k ->
// 16.0k with 8 sequences. A thread that has not started still leaves its range to the
// others (thread_pool.h); one preempted mid-range stalls that launch until it runs.
constexpr int kRangesPerThread = 1;
constexpr int kInlineArgs = 32;      // args packed on the stack; more use the heap
// Bump when the compile pipeline changes its output for the same IR (cache key).
constexpr int kCompilerRevision = 1;

class CpuBuffer final : public Buffer {
 public:
  CpuBuffer(void* data, uint64_t size, bool owned) : data_(data), size_(size), owned_(owned) {}
  ~CpuBuffer() override {
    if (owned_) ::operator delete(data_, kBufferAlignment);
  }
  uint64_t size() const override { return size_; }
  void* host_pointer() const override { return data_; }

 private:
  void* data_;
  uint64_t size_;  // bytes
  bool owned_;     // false: wrapped host memory the caller keeps alive
};

using CpuKernel = NamedKernel<KernelFn>;

class CpuModule final : public Module {
 public:
  CpuModule(std::unique_ptr<cpu::JitLibrary> library, const std::vector<std::string>& names)
      : library_(std::move(library)) {
    for (const std::string& name : names) kernels_.try_emplace(name, name, library_->find(name));
  }

  Kernel& kernel(std::string_view name) override { return find_kernel(kernels_, name); }

 private:
  std::unique_ptr<cpu::JitLibrary> library_;  // owns the code the kernels point into
  KernelMap<KernelFn> kernels_;
};

class CpuStream final : public Stream {
 public:
  explicit CpuStream(cpu::ThreadPool& pool) : pool_(pool) {}

  void do_write(Buffer& dst, uint64_t offset, const void* src, uint64_t bytes) override {
    check_range(dst, offset, bytes);
    if (bytes) std::memcpy(static_cast<char*>(dst.host_pointer()) + offset, src, bytes);
  }

  void do_read(const Buffer& src, uint64_t offset, void* dst, uint64_t bytes) override {
    check_range(src, offset, bytes);
    if (bytes) std::memcpy(dst, static_cast<const char*>(src.host_pointer()) + offset, bytes);
  }

  void do_launch(Kernel& kernel, const Grid& grid, std::span<const KernelArg> args) override;

  void synchronize() override {}  // every call completes before it returns

 private:
  static void check_range(const Buffer& buffer, uint64_t offset, uint64_t bytes) {
    MOAT_INTERNAL_CHECK(buffer.host_pointer() && offset <= buffer.size() && bytes <= buffer.size() - offset,
                        "CPU stream: bytes [", offset, ", +", bytes, ") outside a buffer of ", buffer.size());
  }

  cpu::ThreadPool& pool_;
};

void CpuStream::do_launch(Kernel& kernel, const Grid& grid, std::span<const KernelArg> args) {
  auto* cpu_kernel = dynamic_cast<CpuKernel*>(&kernel);
  MOAT_INTERNAL_CHECK(cpu_kernel, "kernel '", kernel.name(), "' was not loaded by the CPU device");
  int64_t shape[cpu::kGridSlots];
  int64_t groups = 1, items = 1;
  for (int d = 0; d < 3; ++d) {
    shape[d] = grid.groups[d];
    shape[3 + d] = grid.items[d];
    MOAT_INTERNAL_CHECK(grid.groups[d] >= 0 && grid.items[d] >= 1, "kernel '", kernel.name(), "': bad grid");
    MOAT_INTERNAL_CHECK(!__builtin_mul_overflow(groups, grid.groups[d], &groups) &&
                            !__builtin_mul_overflow(items, grid.items[d], &items),
                        "kernel '", kernel.name(), "': grid overflows");
  }
  MOAT_INTERNAL_CHECK(items <= kMaxWorkGroupSize && grid.local_bytes <= kLocalMemoryBytes, "kernel '", kernel.name(),
                      "': ", items, " work-items, ", grid.local_bytes,
                      " local bytes per group exceed the CPU's limits");
  if (groups == 0) return;

  uint64_t inline_slots[kInlineArgs];
  std::vector<uint64_t> heap_slots;
  uint64_t* slots = inline_slots;
  if (args.size() > kInlineArgs) {
    heap_slots.resize(args.size());
    slots = heap_slots.data();
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const KernelArg& arg = args[i];
    switch (arg.kind) {
      case KernelArg::Kind::Buffer:
        MOAT_INTERNAL_CHECK(arg.buffer && arg.buffer->host_pointer(), "kernel '", kernel.name(), "': arg ", i,
                            " is not a CPU buffer");
        slots[i] = reinterpret_cast<uintptr_t>(arg.buffer->host_pointer());
        break;
      case KernelArg::Kind::I64: slots[i] = static_cast<uint64_t>(arg.i64); break;
      case KernelArg::Kind::F32: slots[i] = cpu::f32_slot(arg.f32); break;
    }
  }

  KernelFn fn = cpu_kernel->handle();
  int threads = pool_.threads();
  if (groups == 1 || threads == 1) {
    fn(slots, shape, 0, groups);
    return;
  }
  int64_t ranges = std::min<int64_t>(groups, int64_t{kRangesPerThread} * threads);
  const uint64_t* packed = slots;
  pool_.parallel_for(ranges, [=, &shape](int64_t range) {
    int64_t begin = 0, end = 0;
    cpu::split_range(groups, ranges, range, begin, end);
    fn(packed, shape, begin, end);
  });
}

DeviceProperties host_properties() {
  DeviceProperties p;
  p.info = describe_host_cpu();
  p.max_work_group_size = static_cast<int>(kMaxWorkGroupSize);
  p.local_memory_bytes = kLocalMemoryBytes;
  p.sub_group_size = 1;
  p.vector_bits = p.info.has_feature("avx512f") ? 512 : p.info.has_feature("avx2") ? 256 : 128;
  p.dtypes = {"f32", "f16", "bf16", "i64", "i32", "i8", "u8", "bool"};
  p.host_memory = true;  // DRAM bandwidth is measured (runtime/bandwidth.h), not specified
  return p;
}

class CpuDevice final : public Device {
 public:
  explicit CpuDevice(const CpuOptions& options) : properties_(host_properties()) {
    if (options.threads < 0 || options.threads > kMaxThreads)
      user_error("CPU threads must be between 0 (one per physical core) and ", kMaxThreads, ", not ",
                 options.threads);
    int threads = options.threads > 0 ? options.threads : std::max(1, properties_.info.compute_units);
    pool_ = cpu::make_thread_pool(threads);
    stream_ = std::make_unique<CpuStream>(*pool_);
    jit_ = cpu::make_cpu_jit();
  }

  const DeviceProperties& properties() const override { return properties_; }

  bool supports_op(std::string_view op, std::span<const std::string> dtypes) const override {
    return jit_supports_op(op, dtypes, properties().dtypes);
  }

  std::unique_ptr<Buffer> do_allocate(uint64_t bytes) override {
    uint64_t rounded = std::max<uint64_t>(64, (bytes + 63) / 64 * 64);
    return counted(std::make_unique<CpuBuffer>(::operator new(rounded, kBufferAlignment), bytes, true));
  }

  std::unique_ptr<Buffer> wrap_host(const void* data, uint64_t bytes) override {
    MOAT_INTERNAL_CHECK(data || bytes == 0, "wrap_host of a null pointer");
    return counted(std::make_unique<CpuBuffer>(const_cast<void*>(data), bytes, false));
  }

  std::unique_ptr<Buffer> view(const Buffer& parent, uint64_t offset, uint64_t bytes) override {
    MOAT_INTERNAL_CHECK(parent.host_pointer() && offset <= parent.size() && bytes <= parent.size() - offset,
                        "a view of ", bytes, " bytes at ", offset, " of a buffer of ", parent.size());
    return std::make_unique<CpuBuffer>(static_cast<char*>(parent.host_pointer()) + offset, bytes, false);
  }

  Artifact compile(const Artifact& source) override { return cpu::compile_llvm_ir(source); }

  std::unique_ptr<Module> load(const Artifact& binary) override {
    return std::make_unique<CpuModule>(jit_->load(binary), binary.kernels);
  }

  std::string compile_fingerprint() const override {
    const cpu::HostTarget& host = cpu::host_target();
    return cat("cpu r", kCompilerRevision, " llvm ", host.llvm_version, " O3 ", host.triple, " cpu=", host.cpu,
               " features=", host.features, host.vector_math.empty() ? "" : " veclib=" + host.vector_math);
  }

  Stream& stream() override { return *stream_; }

 private:
  DeviceProperties properties_;
  std::unique_ptr<cpu::ThreadPool> pool_;
  std::unique_ptr<CpuStream> stream_;
  std::shared_ptr<cpu::CpuJit> jit_;
};

}  // namespace

std::unique_ptr<Device> open_cpu_device(const CpuOptions& options) { return std::make_unique<CpuDevice>(options); }

BackendStatus probe_cpu(std::vector<DeviceInfo>& devices) {
  devices.push_back(describe_host_cpu());
  return {"cpu", true, "host CPU"};
}

}  // namespace moat::backends
