// The null device: buffers are host memory behind a device-style interface
// (host_pointer() is nullptr, so the runtime copies through the stream, as it does for
// a discrete GPU); compile(), load() and launches are UserErrors saying they are not
// implemented. Each class is where a real driver puts its own (README.md).
#include <cstring>

#include "backends/null/null_backend.h"
#include "support/error.h"

namespace moat::backends {

namespace {

constexpr const char* kId = "null:0";

// What a user who selected the null device is told for anything that needs a kernel.
[[noreturn]] void not_implemented(std::string_view what) {
  user_error(kId, " cannot ", what, ": not implemented (the null backend is a template for new drivers, "
             "backends/null/README.md); run on another device (`moat devices` lists them)");
}

// Device memory: here plain host memory. A real driver holds its allocation handle.
class NullBuffer final : public Buffer {
 public:
  explicit NullBuffer(uint64_t size) : storage_(std::make_shared<std::vector<uint8_t>>(size)), data_(storage_->data()), size_(size) {}
  // A view: bytes of another buffer, which keeps them alive.
  NullBuffer(const NullBuffer& parent, uint64_t offset, uint64_t size)
      : storage_(parent.storage_), data_(parent.data_ + offset), size_(size) {}
  uint64_t size() const override { return size_; }
  void* host_pointer() const override { return nullptr; }  // as a discrete device: copy through the stream
  uint8_t* data() const { return data_; }

 private:
  std::shared_ptr<std::vector<uint8_t>> storage_;
  uint8_t* data_;
  uint64_t size_;  // bytes
};

const NullBuffer& null_buffer(const Buffer& buffer, uint64_t offset, uint64_t bytes) {
  auto* b = dynamic_cast<const NullBuffer*>(&buffer);
  MOAT_INTERNAL_CHECK(b, "a buffer of another device on ", kId);
  MOAT_INTERNAL_CHECK(offset <= b->size() && bytes <= b->size() - offset, kId, ": bytes [", offset, ", +", bytes,
                      ") outside a buffer of ", b->size());
  return *b;
}

// Runs each call to completion; a real driver enqueues on its queue and waits in
// synchronize().
class NullStream final : public Stream {
 public:
  void synchronize() override {}

 protected:
  void do_write(Buffer& dst, uint64_t offset, const void* src, uint64_t bytes) override {
    if (bytes) std::memcpy(null_buffer(dst, offset, bytes).data() + offset, src, bytes);
  }
  void do_read(const Buffer& src, uint64_t offset, void* dst, uint64_t bytes) override {
    if (bytes) std::memcpy(dst, null_buffer(src, offset, bytes).data() + offset, bytes);
  }
  void do_launch(Kernel&, const Grid&, std::span<const KernelArg>) override { not_implemented("launch a kernel"); }
};

DeviceProperties null_properties() {
  DeviceProperties p;
  p.info = {.id = kId, .backend = "null", .name = "null device (template)", .vendor = "moatless", .arch = "none"};
  p.max_work_group_size = 1;
  p.dtypes = {};  // computes with nothing: supports_op is false for every op
  return p;
}

class NullDevice final : public Device {
 public:
  const DeviceProperties& properties() const override { return properties_; }

  // A real driver answers from its capabilities: the op names the JIT lowers
  // (backends/op_support.h) over the dtypes it computes with.
  bool supports_op(std::string_view, std::span<const std::string>) const override { return false; }

  std::unique_ptr<Buffer> wrap_host(const void* data, uint64_t bytes) override {
    MOAT_INTERNAL_CHECK(data || bytes == 0, "wrap_host of a null pointer");
    std::unique_ptr<Buffer> buffer = allocate(bytes);
    stream_.write(*buffer, 0, data, bytes);
    return buffer;
  }

  std::unique_ptr<Buffer> view(const Buffer& parent, uint64_t offset, uint64_t bytes) override {
    return std::make_unique<NullBuffer>(null_buffer(parent, offset, bytes), offset, bytes);
  }

  Artifact compile(const Artifact& source) override { not_implemented(cat("compile '", source.format, "' kernels")); }
  std::unique_ptr<Module> load(const Artifact& binary) override { not_implemented(cat("load '", binary.format, "' kernels")); }
  std::string compile_fingerprint() const override { return "null r1"; }

  Stream& stream() override { return stream_; }

 protected:
  std::unique_ptr<Buffer> do_allocate(uint64_t bytes) override { return counted(std::make_unique<NullBuffer>(bytes)); }

 private:
  DeviceProperties properties_ = null_properties();
  NullStream stream_;
};

}  // namespace

BackendStatus probe_null(std::vector<DeviceInfo>& devices) {
  devices.push_back(null_properties().info);
  return {"null", true, "template backend (MOAT_NULL_BACKEND=1): host memory, no kernels"};
}

std::unique_ptr<Device> open_null_device(int ordinal) {
  if (ordinal != 0) return nullptr;
  return std::make_unique<NullDevice>();
}

}  // namespace moat::backends
