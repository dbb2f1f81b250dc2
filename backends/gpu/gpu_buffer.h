// Device memory of a GPU driver whose buffers are plain device addresses (CUDA's
// CUdeviceptr, HIP's void*), shared by backends/cuda and backends/hip. The driver
// supplies a Context: the handle every buffer of one device keeps alive, with
//   using Pointer = ...;                        // a device address
//   Pointer allocate(uint64_t bytes) const;     // driver errors thrown as its *_check does
//   void free(Pointer pointer) const noexcept;  // errors ignored (destructors)
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string_view>
#include <type_traits>

#include "backends/device.h"
#include "support/error.h"

namespace moat::backends::gpu {

template <class Context>
class GpuBuffer final : public Buffer {
 public:
  using Pointer = typename Context::Pointer;

  // `size` bytes of new device memory. The drivers reject 0 bytes; an empty buffer
  // still gets a distinct address.
  GpuBuffer(std::shared_ptr<const Context> context, uint64_t size)
      : context_(std::move(context)), size_(size), pointer_(context_->allocate(std::max<uint64_t>(size, 1))) {}
  // A view: bytes of another buffer, not owned.
  GpuBuffer(std::shared_ptr<const Context> context, Pointer pointer, uint64_t size)
      : context_(std::move(context)), size_(size), pointer_(pointer), owned_(false) {}
  ~GpuBuffer() override {
    if (owned_) context_->free(pointer_);
  }

  uint64_t size() const override { return size_; }
  void* host_pointer() const override { return nullptr; }
  Pointer pointer() const { return pointer_; }
  // The address `offset` bytes in.
  Pointer pointer_at(uint64_t offset) const {
    if constexpr (std::is_pointer_v<Pointer>) return static_cast<char*>(pointer_) + offset;
    else return pointer_ + offset;
  }
  const Context& context() const { return *context_; }

  // Bytes [offset, offset + bytes) of `parent`, a buffer of this kind (Device::view).
  static std::unique_ptr<Buffer> view(std::shared_ptr<const Context> context, const Buffer& parent, uint64_t offset,
                                      uint64_t bytes) {
    const auto& p = dynamic_cast<const GpuBuffer&>(parent);
    MOAT_INTERNAL_CHECK(offset <= p.size() && bytes <= p.size() - offset, "a view past the end of its buffer");
    return std::make_unique<GpuBuffer>(std::move(context), p.pointer_at(offset), bytes);
  }

 private:
  std::shared_ptr<const Context> context_;
  uint64_t size_;  // bytes
  Pointer pointer_{};
  bool owned_ = true;
};

// `buffer` as a buffer of `context`'s device (device `id`), with bytes
// [offset, offset + bytes) inside it; InternalError otherwise.
template <class Context>
const GpuBuffer<Context>& device_buffer(const Buffer& buffer, const Context& context, uint64_t offset, uint64_t bytes,
                                        std::string_view id) {
  auto* gpu_buffer = dynamic_cast<const GpuBuffer<Context>*>(&buffer);
  MOAT_INTERNAL_CHECK(gpu_buffer && &gpu_buffer->context() == &context, "a buffer of another device on ", id);
  MOAT_INTERNAL_CHECK(offset <= buffer.size() && bytes <= buffer.size() - offset, id, " stream: bytes [", offset, ", +",
                      bytes, ") outside a buffer of ", buffer.size());
  return *gpu_buffer;
}

// A host range copied into a new buffer of `device` (Device::wrap_host of a device
// that does not share host memory).
inline std::unique_ptr<Buffer> copy_of_host(Device& device, const void* data, uint64_t bytes) {
  MOAT_INTERNAL_CHECK(data || bytes == 0, "wrap_host of a null pointer");
  std::unique_ptr<Buffer> buffer = device.allocate(bytes);
  device.stream().write(*buffer, 0, data, bytes);
  return buffer;
}

}  // namespace moat::backends::gpu
