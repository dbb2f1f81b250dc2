// An OpenCL device as a Device: one context and one in-order command queue per opened
// device; buffers are cl_mem; a module is a built cl_program with one cl_kernel per
// listed kernel. Stream::write and read block until the copy is done; launches are
// queued and run in order; synchronize() is clFinish.
#include <algorithm>
#include <map>

#include "backends/module_kernels.h"
#include "backends/op_support.h"
#include "backends/opencl/cl_api.h"
#include "backends/opencl/cl_info.h"
#include "backends/opencl/cl_program.h"
#include "backends/opencl/opencl.h"
#include "support/error.h"

namespace moat::backends::opencl {

namespace {

// Bump when compile() changes its output for the same source and driver (cache key).
constexpr int kCompilerRevision = 1;

class ClBuffer final : public Buffer {
 public:
  ClBuffer(const ClApi& api, cl_mem mem, uint64_t size) : api_(api), mem_(mem), size_(size) {}
  ~ClBuffer() override {
    api_.enter_thread();
    api_.clReleaseMemObject(mem_);
  }
  uint64_t size() const override { return size_; }
  void* host_pointer() const override { return nullptr; }
  cl_mem mem() const { return mem_; }

 private:
  const ClApi& api_;
  cl_mem mem_;
  uint64_t size_;  // bytes; the cl_mem has at least one byte (OpenCL has no empty buffers)
};

class ClKernel final : public Kernel {
 public:
  ClKernel(const ClApi& api, std::string name, cl_kernel kernel) : api_(api), name_(std::move(name)), kernel_(kernel) {}
  ~ClKernel() override {
    api_.enter_thread();
    api_.clReleaseKernel(kernel_);
  }
  ClKernel(const ClKernel&) = delete;
  ClKernel& operator=(const ClKernel&) = delete;
  const std::string& name() const override { return name_; }
  cl_kernel get() const { return kernel_; }

 private:
  const ClApi& api_;
  std::string name_;
  cl_kernel kernel_;
};

class ClModule final : public Module {
 public:
  ClModule(const ClApi& api, ProgramRef program, const std::vector<std::string>& names) : program_(std::move(program)) {
    api.enter_thread();
    for (const std::string& name : names) {
      if (kernels_.count(name)) continue;
      cl_int code = CL_SUCCESS;
      cl_kernel kernel = api.clCreateKernel(program_.get(), name.c_str(), &code);
      cl_check(code, "clCreateKernel", cat("kernel '", name, "'"));
      kernels_.try_emplace(name, api, name, kernel);
    }
  }

  Kernel& kernel(std::string_view name) override { return find_kernel(kernels_, name); }

 private:
  ProgramRef program_;                                      // kernels are released before it
  std::map<std::string, ClKernel, std::less<>> kernels_;
};

class ClStream final : public Stream {
 public:
  ClStream(const ClApi& api, cl_command_queue queue, const DeviceProperties& properties)
      : api_(api), queue_(queue), properties_(properties) {}

  void do_write(Buffer& dst, uint64_t offset, const void* src, uint64_t bytes) override {
    api_.enter_thread();
    cl_mem mem = checked(dst, offset, bytes);
    if (bytes == 0) return;
    cl_check(api_.clEnqueueWriteBuffer(queue_, mem, CL_TRUE, offset, bytes, src, 0, nullptr, nullptr),
             "clEnqueueWriteBuffer", cat(bytes, " bytes to ", properties_.info.id));
  }

  void do_read(const Buffer& src, uint64_t offset, void* dst, uint64_t bytes) override {
    api_.enter_thread();
    cl_mem mem = checked(src, offset, bytes);
    if (bytes == 0) return;
    cl_check(api_.clEnqueueReadBuffer(queue_, mem, CL_TRUE, offset, bytes, dst, 0, nullptr, nullptr),
             "clEnqueueReadBuffer", cat(bytes, " bytes from ", properties_.info.id));
  }

  void do_launch(Kernel& kernel, const Grid& grid, std::span<const KernelArg> args) override;

  void synchronize() override {
    api_.enter_thread();
    cl_check(api_.clFinish(queue_), "clFinish", properties_.info.id);
  }

 private:
  cl_mem checked(const Buffer& buffer, uint64_t offset, uint64_t bytes) const {
    auto* cl_buffer = dynamic_cast<const ClBuffer*>(&buffer);
    MOAT_INTERNAL_CHECK(cl_buffer, "a buffer of another device used on ", properties_.info.id);
    MOAT_INTERNAL_CHECK(offset <= buffer.size() && bytes <= buffer.size() - offset, "OpenCL stream: bytes [", offset,
                        ", +", bytes, ") outside a buffer of ", buffer.size());
    return cl_buffer->mem();
  }

  const ClApi& api_;
  cl_command_queue queue_;
  const DeviceProperties& properties_;
};

void ClStream::do_launch(Kernel& kernel, const Grid& grid, std::span<const KernelArg> args) {
  api_.enter_thread();
  auto* loaded = dynamic_cast<ClKernel*>(&kernel);
  MOAT_INTERNAL_CHECK(loaded, "kernel '", kernel.name(), "' was not loaded by an OpenCL device");
  if (grid.local_bytes > 0)
    MOAT_INTERNAL_ERROR("kernel '", kernel.name(), "': dynamic local memory (", grid.local_bytes,
                        " bytes) is not supported by the OpenCL backend; Kernel IR declares local arrays statically");
  size_t global[3], local[3];
  int64_t items = 1;
  cl_uint dims = 1;
  for (int d = 0; d < 3; ++d) {
    MOAT_INTERNAL_CHECK(grid.groups[d] >= 0 && grid.items[d] >= 1, "kernel '", kernel.name(), "': bad grid");
    int64_t size = 0;
    MOAT_INTERNAL_CHECK(!__builtin_mul_overflow(grid.groups[d], grid.items[d], &size) &&
                            !__builtin_mul_overflow(items, grid.items[d], &items),
                        "kernel '", kernel.name(), "': grid overflows");
    if (size == 0) return;  // no work-groups
    global[d] = static_cast<size_t>(size);
    local[d] = static_cast<size_t>(grid.items[d]);
    if (grid.groups[d] != 1 || grid.items[d] != 1) dims = static_cast<cl_uint>(d + 1);
  }
  MOAT_INTERNAL_CHECK(items <= properties_.max_work_group_size, "kernel '", kernel.name(), "': ", items,
                      " work-items per group exceed ", properties_.info.id, "'s ", properties_.max_work_group_size);

  cl_kernel k = loaded->get();
  for (size_t i = 0; i < args.size(); ++i) {
    const KernelArg& arg = args[i];
    auto index = static_cast<cl_uint>(i);
    std::string what = cat("arg ", i, " of kernel '", kernel.name(), "'");
    switch (arg.kind) {
      case KernelArg::Kind::Buffer: {
        MOAT_INTERNAL_CHECK(arg.buffer, what, " is a null buffer");
        cl_mem mem = checked(*arg.buffer, 0, 0);
        cl_check(api_.clSetKernelArg(k, index, sizeof mem, &mem), "clSetKernelArg", what);
        break;
      }
      case KernelArg::Kind::I64: {
        cl_long value = arg.i64;
        cl_check(api_.clSetKernelArg(k, index, sizeof value, &value), "clSetKernelArg", what);
        break;
      }
      case KernelArg::Kind::F32: {
        cl_float value = arg.f32;
        cl_check(api_.clSetKernelArg(k, index, sizeof value, &value), "clSetKernelArg", what);
        break;
      }
    }
  }
  cl_check(api_.clEnqueueNDRangeKernel(queue_, k, dims, nullptr, global, local, 0, nullptr, nullptr),
           "clEnqueueNDRangeKernel", cat("kernel '", kernel.name(), "'"));
}

class ClDevice final : public Device {
 public:
  ClDevice(const ClApi& api, ClDeviceEntry entry) : api_(api), entry_(std::move(entry)) {
    cl_context_properties context_properties[] = {CL_CONTEXT_PLATFORM,
                                                  reinterpret_cast<cl_context_properties>(entry_.platform), 0};
    cl_int code = CL_SUCCESS;
    context_ = api_.clCreateContext(context_properties, 1, &entry_.device, nullptr, nullptr, &code);
    cl_check(code, "clCreateContext", id());
    queue_ = api_.clCreateCommandQueue(context_, entry_.device, 0, &code);  // in order, no profiling
    if (code != CL_SUCCESS) api_.clReleaseContext(context_);
    cl_check(code, "clCreateCommandQueue", id());
    stream_ = std::make_unique<ClStream>(api_, queue_, entry_.properties);
    const std::vector<std::string>& features = entry_.properties.info.features;
    target_ = {&api_,
               context_,
               entry_.device,
               id(),
               entry_.properties.info.name,
               std::find(features.begin(), features.end(), "cl_khr_spir") != features.end(),
               entry_.il_version};
  }

  ~ClDevice() override {
    api_.enter_thread();
    api_.clFinish(queue_);  // buffers and programs released later stay valid: they retain the context
    api_.clReleaseCommandQueue(queue_);
    api_.clReleaseContext(context_);
  }

  const DeviceProperties& properties() const override { return entry_.properties; }

  bool supports_op(std::string_view op, std::span<const std::string> dtypes) const override {
    return jit_supports_op(op, dtypes, properties().dtypes);
  }

  std::unique_ptr<Buffer> do_allocate(uint64_t bytes) override { return create(bytes, nullptr); }

  std::unique_ptr<Buffer> view(const Buffer& parent, uint64_t offset, uint64_t bytes) override {
    auto* cl_parent = dynamic_cast<const ClBuffer*>(&parent);
    MOAT_INTERNAL_CHECK(cl_parent && offset <= parent.size() && bytes <= parent.size() - offset,
                        "a view of ", bytes, " bytes at ", offset, " of a buffer of ", parent.size(), " on ", id());
    cl_mem mem = cl_parent->mem();
    api_.enter_thread();
    cl_buffer_region region{offset, std::max<uint64_t>(bytes, 1)};
    if (region.origin + region.size > parent.size()) region.size = bytes;  // an empty view at the end
    cl_int code = CL_SUCCESS;
    cl_mem sub = api_.clCreateSubBuffer(mem, CL_MEM_READ_WRITE, CL_BUFFER_CREATE_TYPE_REGION, &region, &code);
    cl_check(code, "clCreateSubBuffer", cat(bytes, " bytes at ", offset, " on ", id()));
    return std::make_unique<ClBuffer>(api_, sub, bytes);
  }

  std::unique_ptr<Buffer> wrap_host(const void* data, uint64_t bytes) override {
    MOAT_INTERNAL_CHECK(data || bytes == 0, "wrap_host of a null pointer");
    count_allocation();
    stream_->traffic().h2d_bytes += bytes;  // copied at creation (CL_MEM_COPY_HOST_PTR)
    return create(bytes, bytes ? data : nullptr);
  }

  Artifact compile(const Artifact& source) override {
    api_.enter_thread();
    return compile_program(target_, source);
  }

  std::unique_ptr<Module> load(const Artifact& binary) override {
    api_.enter_thread();
    return std::make_unique<ClModule>(api_, load_program(target_, binary), binary.kernels);
  }

  std::string compile_fingerprint() const override {
    return cat("opencl r", kCompilerRevision, " platform=", quoted(entry_.platform_name), " ",
               quoted(entry_.platform_version), " device=", quoted(entry_.properties.info.name),
               " driver=", quoted(entry_.driver_version), " version=", quoted(entry_.device_version),
               " options: cl=", quoted(kSourceOptions), " bc-spir=", quoted(kSpirOptions),
               " spv=", quoted(kSpirvOptions));
  }

  Stream& stream() override { return *stream_; }

 private:
  const std::string& id() const { return entry_.properties.info.id; }

  // A device buffer of `bytes` (at least one byte underneath), filled from `data` when given.
  std::unique_ptr<Buffer> create(uint64_t bytes, const void* data) {
    api_.enter_thread();
    cl_int code = CL_SUCCESS;
    cl_mem_flags flags = CL_MEM_READ_WRITE | (data ? CL_MEM_COPY_HOST_PTR : 0);
    cl_mem mem = api_.clCreateBuffer(context_, flags, std::max<uint64_t>(bytes, 1), const_cast<void*>(data), &code);
    if (code == CL_INVALID_BUFFER_SIZE)
      user_error("a buffer of ", bytes, " bytes is larger than ", id(),
                 " allows (CL_DEVICE_MAX_MEM_ALLOC_SIZE); use a smaller model or context, or another device");
    cl_check(code, "clCreateBuffer", cat(bytes, " bytes on ", id()));
    return counted(std::make_unique<ClBuffer>(api_, mem, bytes));
  }

  const ClApi& api_;
  ClDeviceEntry entry_;
  cl_context context_ = nullptr;
  cl_command_queue queue_ = nullptr;
  ClTarget target_;
  std::unique_ptr<ClStream> stream_;
};

}  // namespace

std::unique_ptr<Device> open_device(int index, const char* library) {
  if (index < 0) return nullptr;
  std::string why;
  const ClApi* api = load_cl_api(library, why);
  if (!api) return nullptr;
  std::vector<ClDeviceEntry> devices = enumerate_cl_devices(*api);
  if (static_cast<size_t>(index) >= devices.size()) return nullptr;
  return std::make_unique<ClDevice>(*api, std::move(devices[index]));
}

}  // namespace moat::backends::opencl
