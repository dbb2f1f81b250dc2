// The null backend: a device that holds buffers in host memory and compiles nothing.
// It is the template for a new driver (README.md): it builds always, so it never rots,
// and backend_table.cpp lists it only when MOAT_NULL_BACKEND=1. Device ids "null:N"
// (one device, null:0).
#pragma once

#include <memory>
#include <vector>

#include "backends/device.h"
#include "backends/registry.h"

namespace moat::backends {

// Appends null:0 to `devices`. Never throws. A real driver loads its runtime here
// (dlopen) and returns "not available: <why>" when it cannot.
BackendStatus probe_null(std::vector<DeviceInfo>& devices);

// null:0; nullptr for any other ordinal (open_device then lists the devices there are).
std::unique_ptr<Device> open_null_device(int ordinal);

}  // namespace moat::backends
