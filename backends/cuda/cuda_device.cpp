// A CUDA GPU as a Device: buffers are cuMemAlloc'd device memory, the default stream
// is one CUstream, compile() links PTX to a cubin (cuda_jit), load() is a module of the
// primary context. Every driver call runs with the device's primary context pushed on
// the calling thread (ContextScope), so devices and threads may mix freely.
#include <algorithm>
#include <map>
#include <new>

#include "backends/cuda/cuda_api.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_jit.h"
#include "backends/gpu/gpu_buffer.h"
#include "backends/gpu/gpu_launch.h"
#include "backends/gpu/gpu_probe.h"
#include "backends/module_kernels.h"
#include "backends/op_support.h"
#include "support/error.h"

namespace moat::backends {

namespace {

using namespace cuda;

// Bump when compile() changes its output for the same PTX (kernel cache key).
constexpr int kCompilerRevision = 1;
constexpr int kNameBytes = 256;

// The device's primary context, retained while any device, buffer or module uses it.
class Context {
 public:
  Context(const CudaApi& api, int ordinal) : api_(api) {
    cuda_check(api, api.cuDeviceGet(&device_, ordinal), "cuDeviceGet", cat("cuda:", ordinal));
    cuda_check(api, api.cuDevicePrimaryCtxRetain(&context_, device_), "cuDevicePrimaryCtxRetain",
               cat("cuda:", ordinal));
  }
  ~Context() { api_.cuDevicePrimaryCtxRelease_v2(device_); }
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;

  const CudaApi& api() const { return api_; }
  CUcontext handle() const { return context_; }

  // Device memory (gpu::GpuBuffer's Context interface).
  using Pointer = CUdeviceptr;
  Pointer allocate(uint64_t bytes) const;
  void free(Pointer pointer) const noexcept;

 private:
  const CudaApi& api_;
  CUdevice device_ = 0;
  CUcontext context_ = nullptr;
};

// Makes a context current on this thread for the scope's lifetime. The nothrow form,
// for destructors, ignores a failure (the calls that follow then fail quietly too).
class ContextScope {
 public:
  explicit ContextScope(const Context& context) : api_(context.api()) {
    cuda_check(api_, api_.cuCtxPushCurrent_v2(context.handle()), "cuCtxPushCurrent", "the device's context");
    pushed_ = true;
  }
  ContextScope(const Context& context, std::nothrow_t) : api_(context.api()) {
    pushed_ = api_.cuCtxPushCurrent_v2(context.handle()) == CUDA_SUCCESS;
  }
  ~ContextScope() {
    CUcontext popped = nullptr;
    if (pushed_) api_.cuCtxPopCurrent_v2(&popped);
  }
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;

 private:
  const CudaApi& api_;
  bool pushed_ = false;
};

Context::Pointer Context::allocate(uint64_t bytes) const {
  ContextScope scope(*this);
  CUdeviceptr pointer = 0;
  cuda_check(api_, api_.cuMemAlloc_v2(&pointer, bytes), "cuMemAlloc", cat(bytes, " bytes"));
  return pointer;
}

void Context::free(Pointer pointer) const noexcept {
  ContextScope scope(*this, std::nothrow);
  api_.cuMemFree_v2(pointer);
}

using CudaBuffer = gpu::GpuBuffer<Context>;
using CudaKernel = NamedKernel<CUfunction>;

class CudaModule final : public Module {
 public:
  CudaModule(std::shared_ptr<const Context> context, const Artifact& binary) : context_(std::move(context)) {
    const CudaApi& api = context_->api();
    std::string what = cat("kernels ", binary.kernels.empty() ? "(none)" : join(binary.kernels, ", "));
    ContextScope scope(*context_);
    module_ = load_image(api, binary.format, binary.bytes, what);
    kernels_ = find_kernels<CUfunction>(
        binary.kernels,
        [&](const std::string& name, CUfunction& function) {
          return api.cuModuleGetFunction(&function, module_, name.c_str()) == CUDA_SUCCESS;
        },
        [&](const std::string& name) {
          api.cuModuleUnload(module_);
          user_error("the ", binary.format, " of ", what, " has no kernel '", name,
                     "' (a kernel needs .visible .entry in PTX)");
        });
  }
  ~CudaModule() override {
    ContextScope scope(*context_, std::nothrow);
    context_->api().cuModuleUnload(module_);
  }

  Kernel& kernel(std::string_view name) override { return find_kernel(kernels_, name); }

 private:
  std::shared_ptr<const Context> context_;
  CUmodule module_ = nullptr;
  KernelMap<CUfunction> kernels_;
};

// write() and read() return once the host memory may be reused / holds the data;
// launches are asynchronous until synchronize().
class CudaStream final : public Stream {
 public:
  CudaStream(std::shared_ptr<const Context> context, const DeviceProperties& properties)
      : context_(std::move(context)), properties_(properties) {
    ContextScope scope(*context_);
    cuda_check(api(), api().cuStreamCreate(&stream_, 0), "cuStreamCreate", properties_.info.id);
  }
  ~CudaStream() override {
    ContextScope scope(*context_, std::nothrow);
    api().cuStreamSynchronize(stream_);
    api().cuStreamDestroy_v2(stream_);
  }

  void do_write(Buffer& dst, uint64_t offset, const void* src, uint64_t bytes) override {
    const CudaBuffer& buffer = device_buffer(dst, offset, bytes);
    if (!bytes) return;
    ContextScope scope(*context_);
    cuda_check(api(), api().cuMemcpyHtoDAsync_v2(buffer.pointer() + offset, src, bytes, stream_), "cuMemcpyHtoD",
               cat(bytes, " bytes"));
    cuda_check(api(), api().cuStreamSynchronize(stream_), "cuStreamSynchronize", "after a write");
  }

  void do_read(const Buffer& src, uint64_t offset, void* dst, uint64_t bytes) override {
    const CudaBuffer& buffer = device_buffer(src, offset, bytes);
    if (!bytes) return;
    ContextScope scope(*context_);
    cuda_check(api(), api().cuMemcpyDtoHAsync_v2(dst, buffer.pointer() + offset, bytes, stream_), "cuMemcpyDtoH",
               cat(bytes, " bytes"));
    cuda_check(api(), api().cuStreamSynchronize(stream_), "cuStreamSynchronize", "after a read");
  }

  void do_launch(Kernel& kernel, const Grid& grid, std::span<const KernelArg> args) override;

  void synchronize() override {
    ContextScope scope(*context_);
    cuda_check(api(), api().cuStreamSynchronize(stream_), "cuStreamSynchronize", properties_.info.id);
  }

 private:
  const CudaApi& api() const { return context_->api(); }

  const CudaBuffer& device_buffer(const Buffer& buffer, uint64_t offset, uint64_t bytes) const {
    return gpu::device_buffer(buffer, *context_, offset, bytes, properties_.info.id);
  }

  std::shared_ptr<const Context> context_;
  const DeviceProperties& properties_;  // the device's, which owns this stream
  CUstream stream_ = nullptr;
};

void CudaStream::do_launch(Kernel& kernel, const Grid& grid, std::span<const KernelArg> args) {
  auto* cuda_kernel = dynamic_cast<CudaKernel*>(&kernel);
  MOAT_INTERNAL_CHECK(cuda_kernel, "kernel '", kernel.name(), "' was not loaded by ", properties_.info.id);
  if (!gpu::check_grid(grid, properties_, kernel.name())) return;
  gpu::PackedArgs<CUdeviceptr> packed(args, kernel.name(), [&](const Buffer& b) { return device_buffer(b, 0, 0).pointer(); });
  ContextScope scope(*context_);
  using gpu::launch_dim;
  cuda_check(api(),
             api().cuLaunchKernel(cuda_kernel->handle(), launch_dim(grid.groups[0]), launch_dim(grid.groups[1]),
                                  launch_dim(grid.groups[2]), launch_dim(grid.items[0]), launch_dim(grid.items[1]),
                                  launch_dim(grid.items[2]), launch_dim(grid.local_bytes), stream_, packed.params(),
                                  nullptr),
             "cuLaunchKernel", kernel.name());
}

int attribute(const CudaApi& api, CUdevice device, CUdevice_attribute which) {
  int value = 0;
  cuda_check(api, api.cuDeviceGetAttribute(&value, which, device), "cuDeviceGetAttribute", cat("cuda:", device));
  return value;
}

DeviceProperties describe(const CudaApi& api, int ordinal) {
  CUdevice device = 0;
  cuda_check(api, api.cuDeviceGet(&device, ordinal), "cuDeviceGet", cat("cuda:", ordinal));
  DeviceProperties p;
  DeviceInfo& info = p.info;
  info.id = cat("cuda:", ordinal);
  info.backend = "cuda";
  char name[kNameBytes] = {};
  cuda_check(api, api.cuDeviceGetName(name, kNameBytes, device), "cuDeviceGetName", info.id);
  info.name = name;
  info.vendor = "NVIDIA";
  int major = attribute(api, device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR);
  int minor = attribute(api, device, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR);
  info.arch = cat("sm_", major, minor);
  size_t memory = 0;
  cuda_check(api, api.cuDeviceTotalMem_v2(&memory, device), "cuDeviceTotalMem", info.id);
  info.memory_bytes = memory;
  info.compute_units = attribute(api, device, CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT);
  p.max_work_group_size = attribute(api, device, CU_DEVICE_ATTRIBUTE_MAX_THREADS_PER_BLOCK);
  p.local_memory_bytes = attribute(api, device, CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK);
  p.sub_group_size = attribute(api, device, CU_DEVICE_ATTRIBUTE_WARP_SIZE);
  p.vector_bits = 128;  // ld.global.v4.f32
  // Double data rate: 2 transfers per memory clock (kHz) over the bus (bits).
  p.memory_bandwidth = 2.0 * 1e3 * attribute(api, device, CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE) *
                       attribute(api, device, CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH) / 8.0;
  int cc = 10 * major + minor;
  p.dtypes = {"f32", "f16"};
  if (cc >= 80) p.dtypes.push_back("bf16");
  if (cc >= 89) p.dtypes.push_back("f8_e4m3");  // cvt to / from e4m3 (Ada, Hopper and later)
  for (const char* t : {"i64", "i32", "i8", "u8", "bool", "q8_0", "q4_0", "q4_k", "q6_k"}) p.dtypes.push_back(t);
  return p;
}

class CudaDevice final : public Device {
 public:
  CudaDevice(const CudaApi& api, int ordinal)
      : properties_(describe(api, ordinal)), context_(std::make_shared<const Context>(api, ordinal)),
        stream_(std::make_unique<CudaStream>(context_, properties_)) {}

  const DeviceProperties& properties() const override { return properties_; }

  bool supports_op(std::string_view op, std::span<const std::string> dtypes) const override {
    return jit_supports_op(op, dtypes, properties().dtypes);
  }

  std::unique_ptr<Buffer> do_allocate(uint64_t bytes) override {
    return counted(std::make_unique<CudaBuffer>(context_, bytes));
  }

  std::unique_ptr<Buffer> view(const Buffer& parent, uint64_t offset, uint64_t bytes) override {
    return CudaBuffer::view(context_, parent, offset, bytes);
  }

  std::unique_ptr<Buffer> wrap_host(const void* data, uint64_t bytes) override {
    return gpu::copy_of_host(*this, data, bytes);
  }

  Artifact compile(const Artifact& source) override {
    if (source.format != "ptx")
      user_error(properties_.info.id, " compiles PTX ('ptx' artifacts), not '", source.format, "'");
    Artifact binary;
    binary.format = "cubin";
    binary.kernels = source.kernels;
    ContextScope scope(*context_);
    binary.bytes = link_ptx(context_->api(), source.as_text(),
                            cat("kernels ", source.kernels.empty() ? "(none)" : join(source.kernels, ", ")));
    return binary;
  }

  std::unique_ptr<Module> load(const Artifact& binary) override {
    if (binary.format != "cubin" && binary.format != "ptx")
      user_error(properties_.info.id, " loads 'cubin' or 'ptx' artifacts, not '", binary.format, "'");
    return std::make_unique<CudaModule>(context_, binary);
  }

  std::string compile_fingerprint() const override {
    return cat("cuda r", kCompilerRevision, " driver ", cuda_version_text(context_->api().driver_version), " ",
               properties_.info.name, " ", properties_.info.arch, " ptx->cubin");
  }

  Stream& stream() override { return *stream_; }

 private:
  DeviceProperties properties_;
  std::shared_ptr<const Context> context_;
  std::unique_ptr<CudaStream> stream_;  // destroyed before the context it uses
};

int device_count(const CudaApi& api) {
  int count = 0;
  CUresult rc = api.cuDeviceGetCount(&count);
  return rc == CUDA_SUCCESS ? count : 0;
}

}  // namespace

BackendStatus probe_cuda(std::vector<DeviceInfo>& devices) {
  std::string why;
  const CudaApi* api = load_cuda_api(why);
  if (!api) return {"cuda", false, "not available: " + why};
  int count = device_count(*api);
  if (count == 0) return {"cuda", false, cat("not available: ", api->library, " loaded, but it reports no devices")};
  std::string unreadable = gpu::describe_devices(
      "cuda", count, [&](int i) { return describe(*api, i).info; }, devices);
  return {"cuda", true,
          cat("driver ", api->library, " (CUDA ", cuda_version_text(api->driver_version), "), ",
              gpu::device_count_text(count), unreadable)};
}

std::unique_ptr<Device> open_cuda_device(int ordinal) {
  std::string why;
  const CudaApi* api = load_cuda_api(why);
  if (!api) gpu::not_available("cuda", "CUDA", ordinal, why);
  gpu::check_ordinal("cuda", "CUDA", ordinal, device_count(*api));
  return std::make_unique<CudaDevice>(*api, ordinal);
}

}  // namespace moat::backends
