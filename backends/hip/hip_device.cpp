// An AMD GPU as a Device: buffers are hipMalloc'd device memory, the default stream is
// one hipStream_t, compile() is hiprtc (hip_compile), load() is hipModuleLoadData. HIP
// keeps a current device per thread, so every call first selects this device.
#include <algorithm>
#include <cstring>
#include <map>

#include "backends/gpu/gpu_buffer.h"
#include "backends/gpu/gpu_launch.h"
#include "backends/gpu/gpu_probe.h"
#include "backends/hip/hip_api.h"
#include "backends/hip/hip_backend.h"
#include "backends/hip/hip_compile.h"
#include "backends/module_kernels.h"
#include "backends/op_support.h"
#include "support/error.h"

namespace moat::backends {

namespace {

using namespace hip;

// Bump when compile() changes its output for the same source (kernel cache key).
constexpr int kCompilerRevision = 1;
constexpr int kNameBytes = 256;

// The runtime and the device ordinal every object of one device uses.
struct Target {
  const HipApi& api;
  int ordinal;
  std::string id;  // "hip:0"

  // Makes this device the calling thread's current one.
  void select() const { hip_check(api, api.hipSetDevice(ordinal), "hipSetDevice", id); }

  // Device memory (gpu::GpuBuffer's Context interface).
  using Pointer = void*;
  Pointer allocate(uint64_t bytes) const {
    select();
    void* pointer = nullptr;
    hip_check(api, api.hipMalloc(&pointer, bytes), "hipMalloc", cat(bytes, " bytes"));
    return pointer;
  }
  void free(Pointer pointer) const noexcept {
    api.hipSetDevice(ordinal);
    api.hipFree(pointer);
  }
};

using HipBuffer = gpu::GpuBuffer<Target>;

class HipModule final : public Module {
 public:
  HipModule(std::shared_ptr<const Target> target, const Artifact& binary) : target_(std::move(target)) {
    const HipApi& api = target_->api;
    const Target& t = *target_;
    std::string what = cat("kernels ", binary.kernels.empty() ? "(none)" : join(binary.kernels, ", "));
    t.select();
    hipError_t rc = api.hipModuleLoadData(&module_, binary.bytes.data());
    if (rc == hipErrorOutOfMemory) hip_check(api, rc, "hipModuleLoadData", what);
    if (rc != hipSuccess)
      user_error("cannot load the code object of ", what, " on ", t.id, ": ", hip_error_name(api, rc),
                 " (a code object runs only on the gfx architecture it was compiled for: recompile it)");
    kernels_ = find_kernels<hipFunction_t>(
        binary.kernels,
        [&](const std::string& name, hipFunction_t& function) {
          return api.hipModuleGetFunction(&function, module_, name.c_str()) == hipSuccess;
        },
        [&](const std::string& name) {
          api.hipModuleUnload(module_);
          user_error("the code object of ", what, " has no kernel '", name,
                     "' (a kernel must be an extern \"C\" __global__ function)");
        });
  }
  ~HipModule() override {
    target_->api.hipSetDevice(target_->ordinal);
    target_->api.hipModuleUnload(module_);
  }

  Kernel& kernel(std::string_view name) override { return find_kernel(kernels_, name); }

 private:
  std::shared_ptr<const Target> target_;
  hipModule_t module_ = nullptr;
  KernelMap<hipFunction_t> kernels_;
};

// write() and read() return once the host memory may be reused / holds the data;
// launches are asynchronous until synchronize().
class HipStream final : public Stream {
 public:
  HipStream(std::shared_ptr<const Target> target, const DeviceProperties& properties)
      : target_(std::move(target)), properties_(properties) {
    target_->select();
    hip_check(api(), api().hipStreamCreate(&stream_), "hipStreamCreate", target_->id);
  }
  ~HipStream() override {
    api().hipSetDevice(target_->ordinal);
    api().hipStreamSynchronize(stream_);
    api().hipStreamDestroy(stream_);
  }

  void do_write(Buffer& dst, uint64_t offset, const void* src, uint64_t bytes) override {
    const HipBuffer& buffer = device_buffer(dst, offset, bytes);
    if (!bytes) return;
    target_->select();
    hip_check(api(),
              api().hipMemcpyHtoDAsync(static_cast<char*>(buffer.pointer()) + offset, const_cast<void*>(src), bytes,
                                       stream_),
              "hipMemcpyHtoD", cat(bytes, " bytes"));
    hip_check(api(), api().hipStreamSynchronize(stream_), "hipStreamSynchronize", "after a write");
  }

  void do_read(const Buffer& src, uint64_t offset, void* dst, uint64_t bytes) override {
    const HipBuffer& buffer = device_buffer(src, offset, bytes);
    if (!bytes) return;
    target_->select();
    hip_check(api(), api().hipMemcpyDtoHAsync(dst, static_cast<char*>(buffer.pointer()) + offset, bytes, stream_),
              "hipMemcpyDtoH", cat(bytes, " bytes"));
    hip_check(api(), api().hipStreamSynchronize(stream_), "hipStreamSynchronize", "after a read");
  }

  void do_launch(Kernel& kernel, const Grid& grid, std::span<const KernelArg> args) override;

  void synchronize() override {
    target_->select();
    hip_check(api(), api().hipStreamSynchronize(stream_), "hipStreamSynchronize", target_->id);
  }

 private:
  const HipApi& api() const { return target_->api; }

  const HipBuffer& device_buffer(const Buffer& buffer, uint64_t offset, uint64_t bytes) const {
    return gpu::device_buffer(buffer, *target_, offset, bytes, target_->id);
  }

  std::shared_ptr<const Target> target_;
  const DeviceProperties& properties_;
  hipStream_t stream_ = nullptr;
};

void HipStream::do_launch(Kernel& kernel, const Grid& grid, std::span<const KernelArg> args) {
  auto* hip_kernel = dynamic_cast<NamedKernel<hipFunction_t>*>(&kernel);
  MOAT_INTERNAL_CHECK(hip_kernel, "kernel '", kernel.name(), "' was not loaded by ", target_->id);
  if (!gpu::check_grid(grid, properties_, kernel.name())) return;
  gpu::PackedArgs<void*> packed(args, kernel.name(), [&](const Buffer& b) { return device_buffer(b, 0, 0).pointer(); });
  target_->select();
  using gpu::launch_dim;
  hip_check(api(),
            api().hipModuleLaunchKernel(hip_kernel->handle(), launch_dim(grid.groups[0]), launch_dim(grid.groups[1]),
                                        launch_dim(grid.groups[2]), launch_dim(grid.items[0]),
                                        launch_dim(grid.items[1]), launch_dim(grid.items[2]),
                                        launch_dim(grid.local_bytes), stream_, packed.params(), nullptr),
            "hipModuleLaunchKernel", kernel.name());
}

int attribute(const HipApi& api, int ordinal, hipDeviceAttribute_t which) {
  int value = 0;
  hip_check(api, api.hipDeviceGetAttribute(&value, which, ordinal), "hipDeviceGetAttribute", cat("hip:", ordinal));
  return value;
}

// The gfx name and target features ("gfx90a:sramecc+:xnack-") from the properties
// struct; "" when the runtime gave none.
std::string gcn_arch_name(const HipApi& api, int ordinal) {
  std::vector<char> buffer(kHipDevicePropBytes, '\0');
  hip_check(api, api.hipGetDeviceProperties(buffer.data(), ordinal), "hipGetDeviceProperties", cat("hip:", ordinal));
  const char* name = buffer.data() + offsetof(hipDevicePropPrefix, gcnArchName);
  if (std::strncmp(name, "gfx", 3) == 0) return std::string(name, strnlen(name, 256));
  return "";
}

DeviceProperties describe(const HipApi& api, int ordinal) {
  DeviceProperties p;
  DeviceInfo& info = p.info;
  info.id = cat("hip:", ordinal);
  info.backend = "hip";
  char name[kNameBytes] = {};
  hip_check(api, api.hipDeviceGetName(name, kNameBytes, ordinal), "hipDeviceGetName", info.id);
  info.name = name;
  info.vendor = "AMD";
  std::string arch = gcn_arch_name(api, ordinal);
  size_t colon = arch.find(':');
  info.arch = arch.substr(0, colon);  // features ("sramecc+", "xnack-") follow the name
  while (colon != std::string::npos) {
    size_t next = arch.find(':', colon + 1);
    info.features.push_back(arch.substr(colon + 1, next == std::string::npos ? next : next - colon - 1));
    colon = next;
  }
  size_t memory = 0;
  hip_check(api, api.hipDeviceTotalMem(&memory, ordinal), "hipDeviceTotalMem", info.id);
  info.memory_bytes = memory;
  info.compute_units = attribute(api, ordinal, hipDeviceAttributeMultiprocessorCount);
  p.max_work_group_size = attribute(api, ordinal, hipDeviceAttributeMaxThreadsPerBlock);
  p.local_memory_bytes = attribute(api, ordinal, hipDeviceAttributeMaxSharedMemoryPerBlock);
  p.sub_group_size = attribute(api, ordinal, hipDeviceAttributeWarpSize);  // 64 (CDNA, GCN) or 32 (RDNA)
  p.vector_bits = 128;  // global_load_dwordx4
  // Double data rate: 2 transfers per memory clock (kHz) over the bus (bits).
  p.memory_bandwidth = 2.0 * 1e3 * attribute(api, ordinal, hipDeviceAttributeMemoryClockRate) *
                       attribute(api, ordinal, hipDeviceAttributeMemoryBusWidth) / 8.0;
  p.dtypes = {"f32", "f16", "bf16", "i64", "i32", "i8", "u8", "bool", "q8_0", "q4_0", "q4_k", "q6_k"};
  return p;
}

class HipDevice final : public Device {
 public:
  HipDevice(const HipApi& api, int ordinal)
      : target_(std::make_shared<const Target>(Target{api, ordinal, cat("hip:", ordinal)})),
        properties_(describe(api, ordinal)),
        stream_(std::make_unique<HipStream>(target_, properties_)) {
    if (properties_.info.arch.empty())
      user_error(target_->id, " (", properties_.info.name,
                 ") does not report its gfx architecture, so moatless cannot compile for it");
  }

  const DeviceProperties& properties() const override { return properties_; }

  bool supports_op(std::string_view op, std::span<const std::string> dtypes) const override {
    return jit_supports_op(op, dtypes, properties().dtypes);
  }

  std::unique_ptr<Buffer> do_allocate(uint64_t bytes) override {
    return counted(std::make_unique<HipBuffer>(target_, bytes));
  }

  std::unique_ptr<Buffer> view(const Buffer& parent, uint64_t offset, uint64_t bytes) override {
    return HipBuffer::view(target_, parent, offset, bytes);
  }

  std::unique_ptr<Buffer> wrap_host(const void* data, uint64_t bytes) override {
    return gpu::copy_of_host(*this, data, bytes);
  }

  Artifact compile(const Artifact& source) override { return hip::compile_hip(source, properties_.info.arch); }

  std::unique_ptr<Module> load(const Artifact& binary) override {
    if (binary.format != "hsaco")
      user_error(target_->id, " loads AMD GPU code objects ('hsaco' artifacts), not '", binary.format, "'");
    return std::make_unique<HipModule>(target_, binary);
  }

  std::string compile_fingerprint() const override {
    return cat("hip r", kCompilerRevision, " runtime ", hip_version_text(target_->api.runtime_version), " ",
               hip_compiler_version(), " ", properties_.info.name, " ", properties_.info.arch, " O3");
  }

  Stream& stream() override { return *stream_; }

 private:
  std::shared_ptr<const Target> target_;  // shared with buffers and modules
  DeviceProperties properties_;
  std::unique_ptr<HipStream> stream_;
};

int device_count(const HipApi& api) {
  int count = 0;
  return api.hipGetDeviceCount(&count) == hipSuccess ? count : 0;
}

}  // namespace

BackendStatus probe_hip(std::vector<DeviceInfo>& devices) {
  std::string why;
  const HipApi* api = load_hip_api(why);
  if (!api) return {"hip", false, "not available: " + why};
  int count = device_count(*api);
  if (count == 0) return {"hip", false, cat("not available: ", api->library, " loaded, but it reports no devices")};
  std::string notes = gpu::describe_devices(
      "hip", count, [&](int i) { return describe(*api, i).info; }, devices);
  if (!hip_compiler_available()) notes += "; cannot compile: " + hip_compiler_unavailable_reason();
  return {"hip", true,
          cat("runtime ", api->library, " (HIP ", hip_version_text(api->runtime_version), "), ",
              gpu::device_count_text(count), notes)};
}

std::unique_ptr<Device> open_hip_device(int ordinal) {
  std::string why;
  const HipApi* api = load_hip_api(why);
  if (!api) gpu::not_available("hip", "HIP", ordinal, why);
  gpu::check_ordinal("hip", "HIP", ordinal, device_count(*api));
  return std::make_unique<HipDevice>(*api, ordinal);
}

}  // namespace moat::backends
