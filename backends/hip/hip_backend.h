// AMD GPUs through the HIP runtime (libamdhip64, loaded with dlopen): devices "hip:N".
// compile() turns HIP C++ ("hip", from jit/'s HIP printer) into a code object
// ("hsaco") for the device's gfx architecture with hiprtc (hip_compile.h: in a child
// process); load() takes the code object. Kernel arguments (device.h's ABI): a buffer
// is its device pointer, I64 an int64 (`long long`), F32 a float; the grid is groups =
// blocks of items = threads.
#pragma once

#include <memory>
#include <vector>

#include "backends/device.h"
#include "backends/registry.h"

namespace moat::backends {

// Appends this machine's HIP devices to `devices` and says whether HIP is usable
// ("not available: libamdhip64 not found (no ROCm runtime)"). Never throws.
BackendStatus probe_hip(std::vector<DeviceInfo>& devices);

// Device `ordinal` ("hip:<ordinal>"). UserError saying why when HIP is not available
// or there is no such device.
std::unique_ptr<Device> open_hip_device(int ordinal);

}  // namespace moat::backends
