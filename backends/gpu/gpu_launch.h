// Launch helpers shared by the GPU drivers whose launch call takes a grid of blocks and
// an array of pointers to argument values (cuLaunchKernel, hipModuleLaunchKernel).
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "backends/device.h"
#include "support/error.h"

namespace moat::backends::gpu {

inline constexpr int64_t kMaxGridX = (int64_t{1} << 31) - 1;  // blocks
inline constexpr int64_t kMaxGridYZ = 65535;                  // blocks

// Checks `grid` against the grid limits and the device's block and shared-memory limits
// (InternalError naming `kernel`: the schedule chose them). False when a dimension has
// no blocks: nothing to launch.
bool check_grid(const Grid& grid, const DeviceProperties& properties, std::string_view kernel);

// A grid dimension as the driver's launch call takes it (checked by check_grid).
inline unsigned launch_dim(int64_t v) { return static_cast<unsigned>(v); }

// Kernel arguments as the launch call reads them: params()[i] points at argument i's
// value (device.h's ABI: a buffer is its device address, I64 an int64, F32 a float).
// `address_of(const Buffer&)` gives a buffer's address, checking it is the device's.
template <class Pointer>
class PackedArgs {
 public:
  template <class AddressOf>
  PackedArgs(std::span<const KernelArg> args, std::string_view kernel, AddressOf&& address_of)
      : slots_(args.size()), params_(args.size()) {
    for (size_t i = 0; i < args.size(); ++i) {
      const KernelArg& arg = args[i];
      switch (arg.kind) {
        case KernelArg::Kind::Buffer:
          MOAT_INTERNAL_CHECK(arg.buffer, "kernel '", kernel, "': arg ", i, " has no buffer");
          slots_[i].pointer = address_of(*arg.buffer);
          params_[i] = &slots_[i].pointer;
          break;
        case KernelArg::Kind::I64:
          slots_[i].i64 = arg.i64;
          params_[i] = &slots_[i].i64;
          break;
        case KernelArg::Kind::F32:
          slots_[i].f32 = arg.f32;
          params_[i] = &slots_[i].f32;
          break;
      }
    }
  }
  PackedArgs(const PackedArgs&) = delete;  // params() points into slots_
  PackedArgs& operator=(const PackedArgs&) = delete;

  void** params() { return params_.empty() ? nullptr : params_.data(); }

 private:
  union Slot {
    Pointer pointer;
    int64_t i64;
    float f32;
  };
  std::vector<Slot> slots_;
  std::vector<void*> params_;
};

}  // namespace moat::backends::gpu
