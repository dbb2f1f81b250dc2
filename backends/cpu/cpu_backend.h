// The host CPU as the device "cpu" (cpu_device.cpp): kernels are LLVM IR ("ll")
// compiled to a host object ("o") and run on a thread pool. open_cpu_device is in
// backends/device.h (tests and tools open the CPU directly).
#pragma once

#include <vector>

#include "backends/registry.h"

namespace moat::backends {

// Appends the host CPU (describe_host_cpu) to `devices`; always available.
BackendStatus probe_cpu(std::vector<DeviceInfo>& devices);

}  // namespace moat::backends
