// A CUDA GPU as a Device: buffers are cuMemAlloc'd device memory, the default stream
// is one CUstream, compile() links PTX to a cubin (cuda_jit), load() is a module of the
// primary context. Every driver call runs with the device's primary context pushed on
// the calling thread (ContextScope), so devices and threads may mix freely.
#include <algorithm>
#include <map>
#include <new>

#include "backends/module_kernels.h"
#include "backends/cuda/cuda_api.h"
#include "backends/cuda/cuda_backend.h"
#include "backends/cuda/cuda_jit.h"
#include "support/error.h"

namespace moat::backends {

namespace {

using namespace cuda;

// Bump when compile() changes its output for the same PTX (kernel cache key).
constexpr int kCompilerRevision = 1;
constexpr int kNameBytes = 256;
constexpr int64_t kMaxGridX = (int64_t{1} << 31) - 1;  // blocks
constexpr int64_t kMaxGridYZ = 65535;                  // blocks

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

class CudaBuffer final : public Buffer {
 public:
  CudaBuffer(std::shared_ptr<const Context> context, uint64_t size) : context_(std::move(context)), size_(size) {
    ContextScope scope(*context_);
    // cuMemAlloc rejects 0 bytes; an empty buffer still gets a distinct address.
    cuda_check(context_->api(), context_->api().cuMemAlloc_v2(&pointer_, std::max<uint64_t>(size, 1)), "cuMemAlloc",
               cat(size, " bytes"));
  }
  // A view: bytes of another buffer, not owned.
  CudaBuffer(std::shared_ptr<const Context> context, CUdeviceptr pointer, uint64_t size)
      : context_(std::move(context)), size_(size), pointer_(pointer), owned_(false) {}
  ~CudaBuffer() override {
    if (!owned_) return;
    ContextScope scope(*context_, std::nothrow);
    context_->api().cuMemFree_v2(pointer_);
  }
  uint64_t size() const override { return size_; }
  void* host_pointer() const override { return nullptr; }
  CUdeviceptr pointer() const { return pointer_; }
  const Context& context() const { return *context_; }

 private:
  std::shared_ptr<const Context> context_;
  uint64_t size_;  // bytes
  CUdeviceptr pointer_ = 0;
  bool owned_ = true;
};

class CudaKernel final : public Kernel {
 public:
  CudaKernel(std::string name, CUfunction function) : name_(std::move(name)), function_(function) {}
  const std::string& name() const override { return name_; }
  CUfunction function() const { return function_; }

 private:
  std::string name_;
  CUfunction function_;  // owned by the module
};

class CudaModule final : public Module {
 public:
  CudaModule(std::shared_ptr<const Context> context, const Artifact& binary) : context_(std::move(context)) {
    const CudaApi& api = context_->api();
    std::string what = cat("kernels ", binary.kernels.empty() ? "(none)" : join(binary.kernels, ", "));
    ContextScope scope(*context_);
    module_ = load_image(api, binary.format, binary.bytes, what);
    for (const std::string& name : binary.kernels) {
      CUfunction function = nullptr;
      if (api.cuModuleGetFunction(&function, module_, name.c_str()) != CUDA_SUCCESS) {
        api.cuModuleUnload(module_);
        user_error("the ", binary.format, " of ", what, " has no kernel '", name,
                   "' (a kernel needs .visible .entry in PTX)");
      }
      kernels_.try_emplace(name, name, function);
    }
  }
  ~CudaModule() override {
    ContextScope scope(*context_, std::nothrow);
    context_->api().cuModuleUnload(module_);
  }

  Kernel& kernel(std::string_view name) override { return find_kernel(kernels_, name); }

 private:
  std::shared_ptr<const Context> context_;
  CUmodule module_ = nullptr;
  std::map<std::string, CudaKernel, std::less<>> kernels_;
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
    auto* cuda_buffer = dynamic_cast<const CudaBuffer*>(&buffer);
    MOAT_INTERNAL_CHECK(cuda_buffer && &cuda_buffer->context() == context_.get(), "a buffer of another device on ",
                        properties_.info.id);
    MOAT_INTERNAL_CHECK(offset <= buffer.size() && bytes <= buffer.size() - offset, properties_.info.id,
                        " stream: bytes [", offset, ", +", bytes, ") outside a buffer of ", buffer.size());
    return *cuda_buffer;
  }

  std::shared_ptr<const Context> context_;
  const DeviceProperties& properties_;  // the device's, which owns this stream
  CUstream stream_ = nullptr;
};

void CudaStream::do_launch(Kernel& kernel, const Grid& grid, std::span<const KernelArg> args) {
  auto* cuda_kernel = dynamic_cast<CudaKernel*>(&kernel);
  MOAT_INTERNAL_CHECK(cuda_kernel, "kernel '", kernel.name(), "' was not loaded by ", properties_.info.id);
  int64_t items = 1;
  for (int d = 0; d < 3; ++d) {
    int64_t max_groups = d == 0 ? kMaxGridX : kMaxGridYZ;
    MOAT_INTERNAL_CHECK(grid.groups[d] >= 0 && grid.groups[d] <= max_groups && grid.items[d] >= 1 &&
                            grid.items[d] <= properties_.max_work_group_size,
                        "kernel '", kernel.name(), "': bad grid dimension ", d);
    items *= grid.items[d];
  }
  MOAT_INTERNAL_CHECK(items <= properties_.max_work_group_size && grid.local_bytes >= 0 &&
                          grid.local_bytes <= properties_.local_memory_bytes,
                      "kernel '", kernel.name(), "': ", items, " threads, ", grid.local_bytes,
                      " shared bytes per block exceed ", properties_.info.id, "'s limits");
  if (grid.groups[0] == 0 || grid.groups[1] == 0 || grid.groups[2] == 0) return;

  // cuLaunchKernel reads each argument through a pointer to its value.
  union Slot {
    CUdeviceptr pointer;
    int64_t i64;
    float f32;
  };
  std::vector<Slot> slots(args.size());
  std::vector<void*> params(args.size());
  for (size_t i = 0; i < args.size(); ++i) {
    const KernelArg& arg = args[i];
    switch (arg.kind) {
      case KernelArg::Kind::Buffer:
        MOAT_INTERNAL_CHECK(arg.buffer, "kernel '", kernel.name(), "': arg ", i, " has no buffer");
        slots[i].pointer = device_buffer(*arg.buffer, 0, 0).pointer();
        params[i] = &slots[i].pointer;
        break;
      case KernelArg::Kind::I64:
        slots[i].i64 = arg.i64;
        params[i] = &slots[i].i64;
        break;
      case KernelArg::Kind::F32:
        slots[i].f32 = arg.f32;
        params[i] = &slots[i].f32;
        break;
    }
  }
  ContextScope scope(*context_);
  auto u = [](int64_t v) { return static_cast<unsigned>(v); };
  cuda_check(api(),
             api().cuLaunchKernel(cuda_kernel->function(), u(grid.groups[0]), u(grid.groups[1]), u(grid.groups[2]),
                                  u(grid.items[0]), u(grid.items[1]), u(grid.items[2]), u(grid.local_bytes), stream_,
                                  params.empty() ? nullptr : params.data(), nullptr),
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

  bool supports_op(std::string_view, std::span<const std::string> dtypes) const override {
    return std::all_of(dtypes.begin(), dtypes.end(), [&](const std::string& t) {
      return std::find(properties_.dtypes.begin(), properties_.dtypes.end(), t) != properties_.dtypes.end();
    });
  }

  std::unique_ptr<Buffer> do_allocate(uint64_t bytes) override {
    return counted(std::make_unique<CudaBuffer>(context_, bytes));
  }

  std::unique_ptr<Buffer> view(const Buffer& parent, uint64_t offset, uint64_t bytes) override {
    const auto& p = dynamic_cast<const CudaBuffer&>(parent);
    MOAT_INTERNAL_CHECK(offset <= p.size() && bytes <= p.size() - offset, "a view past the end of its buffer");
    return std::make_unique<CudaBuffer>(context_, p.pointer() + offset, bytes);
  }

  std::unique_ptr<Buffer> wrap_host(const void* data, uint64_t bytes) override {
    MOAT_INTERNAL_CHECK(data || bytes == 0, "wrap_host of a null pointer");
    auto buffer = allocate(bytes);
    stream_->write(*buffer, 0, data, bytes);
    return buffer;
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
  std::string unreadable;
  for (int i = 0; i < count; ++i) {
    try {
      devices.push_back(describe(*api, i).info);
    } catch (const std::exception& e) {
      unreadable += cat("; cuda:", i, " unreadable: ", e.what());
    }
  }
  return {"cuda", true,
          cat("driver ", api->library, " (CUDA ", cuda_version_text(api->driver_version), "), ", count,
              count == 1 ? " device" : " devices", unreadable)};
}

std::unique_ptr<Device> open_cuda_device(int ordinal) {
  std::string why;
  const CudaApi* api = load_cuda_api(why);
  if (!api)
    user_error("cannot open cuda:", ordinal, ": CUDA is not available: ", why,
               "; `moat devices` lists the devices and the state of each backend");
  int count = device_count(*api);
  if (ordinal < 0 || ordinal >= count)
    user_error("no device 'cuda:", ordinal, "' (this machine has ", count, " CUDA device", count == 1 ? "" : "s",
               "); `moat devices` lists them");
  return std::make_unique<CudaDevice>(*api, ordinal);
}

}  // namespace moat::backends
