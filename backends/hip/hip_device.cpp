// An AMD GPU as a Device: buffers are hipMalloc'd device memory, the default stream is
// one hipStream_t, compile() is hiprtc (hip_compile), load() is hipModuleLoadData. HIP
// keeps a current device per thread, so every call first selects this device.
#include <algorithm>
#include <cstring>
#include <map>

#include "backends/module_kernels.h"
#include "backends/hip/hip_api.h"
#include "backends/hip/hip_backend.h"
#include "backends/hip/hip_compile.h"
#include "support/error.h"

namespace moat::backends {

namespace {

using namespace hip;

// Bump when compile() changes its output for the same source (kernel cache key).
constexpr int kCompilerRevision = 1;
constexpr int kNameBytes = 256;
constexpr int64_t kMaxGridX = (int64_t{1} << 31) - 1;  // blocks
constexpr int64_t kMaxGridYZ = 65535;                  // blocks

// The runtime and the device ordinal every object of one device uses.
struct Target {
  const HipApi& api;
  int ordinal;
  std::string id;  // "hip:0"

  // Makes this device the calling thread's current one.
  void select() const { hip_check(api, api.hipSetDevice(ordinal), "hipSetDevice", id); }
};

class HipBuffer final : public Buffer {
 public:
  HipBuffer(std::shared_ptr<const Target> target, uint64_t size) : target_(std::move(target)), size_(size) {
    target_->select();
    // An empty buffer still gets a distinct address.
    hip_check(target_->api, target_->api.hipMalloc(&pointer_, std::max<uint64_t>(size, 1)), "hipMalloc",
              cat(size, " bytes"));
  }
  // A view: bytes of another buffer, not owned.
  HipBuffer(std::shared_ptr<const Target> target, void* pointer, uint64_t size)
      : target_(std::move(target)), size_(size), pointer_(pointer), owned_(false) {}
  ~HipBuffer() override {
    if (!owned_) return;
    target_->api.hipSetDevice(target_->ordinal);
    target_->api.hipFree(pointer_);
  }
  uint64_t size() const override { return size_; }
  void* host_pointer() const override { return nullptr; }
  void* pointer() const { return pointer_; }
  const Target& target() const { return *target_; }

 private:
  std::shared_ptr<const Target> target_;
  uint64_t size_;         // bytes
  void* pointer_ = nullptr;
  bool owned_ = true;
};

class HipKernel final : public Kernel {
 public:
  HipKernel(std::string name, hipFunction_t function) : name_(std::move(name)), function_(function) {}
  const std::string& name() const override { return name_; }
  hipFunction_t function() const { return function_; }

 private:
  std::string name_;
  hipFunction_t function_;  // owned by the module
};

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
    for (const std::string& name : binary.kernels) {
      hipFunction_t function = nullptr;
      if (api.hipModuleGetFunction(&function, module_, name.c_str()) != hipSuccess) {
        api.hipModuleUnload(module_);
        user_error("the code object of ", what, " has no kernel '", name,
                   "' (a kernel must be an extern \"C\" __global__ function)");
      }
      kernels_.try_emplace(name, name, function);
    }
  }
  ~HipModule() override {
    target_->api.hipSetDevice(target_->ordinal);
    target_->api.hipModuleUnload(module_);
  }

  Kernel& kernel(std::string_view name) override { return find_kernel(kernels_, name); }

 private:
  std::shared_ptr<const Target> target_;
  hipModule_t module_ = nullptr;
  std::map<std::string, HipKernel, std::less<>> kernels_;
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
    auto* hip_buffer = dynamic_cast<const HipBuffer*>(&buffer);
    MOAT_INTERNAL_CHECK(hip_buffer && &hip_buffer->target() == target_.get(), "a buffer of another device on ",
                        target_->id);
    MOAT_INTERNAL_CHECK(offset <= buffer.size() && bytes <= buffer.size() - offset, target_->id, " stream: bytes [",
                        offset, ", +", bytes, ") outside a buffer of ", buffer.size());
    return *hip_buffer;
  }

  std::shared_ptr<const Target> target_;
  const DeviceProperties& properties_;
  hipStream_t stream_ = nullptr;
};

void HipStream::do_launch(Kernel& kernel, const Grid& grid, std::span<const KernelArg> args) {
  auto* hip_kernel = dynamic_cast<HipKernel*>(&kernel);
  MOAT_INTERNAL_CHECK(hip_kernel, "kernel '", kernel.name(), "' was not loaded by ", target_->id);
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
                      " shared bytes per block exceed ", target_->id, "'s limits");
  if (grid.groups[0] == 0 || grid.groups[1] == 0 || grid.groups[2] == 0) return;

  // hipModuleLaunchKernel reads each argument through a pointer to its value.
  union Slot {
    void* pointer;
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
  target_->select();
  auto u = [](int64_t v) { return static_cast<unsigned>(v); };
  hip_check(api(),
            api().hipModuleLaunchKernel(hip_kernel->function(), u(grid.groups[0]), u(grid.groups[1]),
                                        u(grid.groups[2]), u(grid.items[0]), u(grid.items[1]), u(grid.items[2]),
                                        u(grid.local_bytes), stream_, params.empty() ? nullptr : params.data(),
                                        nullptr),
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

  bool supports_op(std::string_view, std::span<const std::string> dtypes) const override {
    return std::all_of(dtypes.begin(), dtypes.end(), [&](const std::string& t) {
      return std::find(properties_.dtypes.begin(), properties_.dtypes.end(), t) != properties_.dtypes.end();
    });
  }

  std::unique_ptr<Buffer> do_allocate(uint64_t bytes) override {
    return counted(std::make_unique<HipBuffer>(target_, bytes));
  }

  std::unique_ptr<Buffer> view(const Buffer& parent, uint64_t offset, uint64_t bytes) override {
    const auto& p = dynamic_cast<const HipBuffer&>(parent);
    MOAT_INTERNAL_CHECK(offset <= p.size() && bytes <= p.size() - offset, "a view past the end of its buffer");
    return std::make_unique<HipBuffer>(target_, static_cast<char*>(p.pointer()) + offset, bytes);
  }

  std::unique_ptr<Buffer> wrap_host(const void* data, uint64_t bytes) override {
    MOAT_INTERNAL_CHECK(data || bytes == 0, "wrap_host of a null pointer");
    auto buffer = allocate(bytes);
    stream_->write(*buffer, 0, data, bytes);
    return buffer;
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
  std::string notes;
  for (int i = 0; i < count; ++i) {
    try {
      devices.push_back(describe(*api, i).info);
    } catch (const std::exception& e) {
      notes += cat("; hip:", i, " unreadable: ", e.what());
    }
  }
  if (!hip_compiler_available()) notes += "; cannot compile: " + hip_compiler_unavailable_reason();
  return {"hip", true,
          cat("runtime ", api->library, " (HIP ", hip_version_text(api->runtime_version), "), ", count,
              count == 1 ? " device" : " devices", notes)};
}

std::unique_ptr<Device> open_hip_device(int ordinal) {
  std::string why;
  const HipApi* api = load_hip_api(why);
  if (!api)
    user_error("cannot open hip:", ordinal, ": HIP is not available: ", why,
               "; `moat devices` lists the devices and the state of each backend");
  int count = device_count(*api);
  if (ordinal < 0 || ordinal >= count)
    user_error("no device 'hip:", ordinal, "' (this machine has ", count, " HIP device", count == 1 ? "" : "s",
               "); `moat devices` lists them");
  return std::make_unique<HipDevice>(*api, ordinal);
}

}  // namespace moat::backends
