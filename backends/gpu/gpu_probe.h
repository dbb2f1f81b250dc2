// Enumeration and opening shared by the GPU drivers with numbered devices
// ("cuda:N", "hip:N"): the per-device description loop and the errors of open.
#pragma once

#include <exception>
#include <string>
#include <string_view>
#include <vector>

#include "backends/registry.h"
#include "support/strings.h"

namespace moat::backends::gpu {

// Appends describe(i) for each of `count` devices to `devices`. A device that cannot
// be described is left out and noted: "; cuda:1 unreadable: <why>" (the result).
template <class Describe>
std::string describe_devices(std::string_view backend, int count, Describe&& describe, std::vector<DeviceInfo>& devices) {
  std::string notes;
  for (int i = 0; i < count; ++i) {
    try {
      devices.push_back(describe(i));
    } catch (const std::exception& e) {
      notes += cat("; ", backend, ":", i, " unreadable: ", e.what());
    }
  }
  return notes;
}

// "1 device", "2 devices".
std::string device_count_text(int count);

// UserError for open when the driver cannot be loaded: `label` is the driver's name
// in text ("CUDA"), `why` the loader's reason.
[[noreturn]] void not_available(std::string_view backend, std::string_view label, int ordinal, std::string_view why);

// UserError unless 0 <= ordinal < count.
void check_ordinal(std::string_view backend, std::string_view label, int ordinal, int count);

}  // namespace moat::backends::gpu
