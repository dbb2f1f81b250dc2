// The registration table: every backend, once (STYLE rule 13). enumerate_devices()
// (registry.cpp) and open_device() (device.cpp) iterate it; nothing else compares
// backend names to choose code. Adding a backend is a folder under backends/ and one
// entry in backend_table.cpp (backends/null/README.md walks through it).
#pragma once

#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "backends/device.h"
#include "backends/registry.h"

namespace moat::backends {

struct BackendEntry {
  std::string_view name;  // DeviceInfo::backend
  // Device ids: "<name>:N" when numbered, else the name alone ("cpu", one device).
  bool numbered = true;
  // Whether the backend takes part on this run (read at each enumeration: the one place
  // its switch is read); nullptr: always. A disabled backend is neither listed nor opened.
  bool (*enabled)() = nullptr;
  // Appends the backend's devices to `devices`; says whether it is usable and why not
  // ("not available: <reason>"). Never throws.
  BackendStatus (*probe)(std::vector<DeviceInfo>& devices) = nullptr;
  // Device `ordinal` (0 when not numbered). nullptr when there is no such device
  // (open_device then lists the ones there are); UserError when the backend cannot open
  // it and can say why better.
  std::unique_ptr<Device> (*open)(int ordinal, const CpuOptions& cpu_options) = nullptr;
};

// The backends in enumeration order (cpu first).
std::span<const BackendEntry> backend_table();

}  // namespace moat::backends
