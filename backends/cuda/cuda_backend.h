// NVIDIA GPUs through the CUDA driver API (libcuda.so.1, loaded with dlopen): devices
// "cuda:N". compile() turns PTX text ("ptx", from jit/'s PTX emitter) into a cubin for
// the device with the driver's linker, so the kernel cache holds machine code and a
// warm start JITs nothing; load() takes a "cubin" or, JIT-compiling it then, "ptx".
// Kernel arguments (device.h's ABI): a buffer is its CUdeviceptr, I64 an int64, F32 a
// float; the grid is groups = blocks of items = threads.
#pragma once

#include <memory>
#include <vector>

#include "backends/device.h"
#include "backends/registry.h"

namespace moat::backends {

// Appends this machine's CUDA devices to `devices` and says whether CUDA is usable
// ("not available: libcuda.so.1 not found (no NVIDIA driver)"). Never throws.
BackendStatus probe_cuda(std::vector<DeviceInfo>& devices);

// Device `ordinal` ("cuda:<ordinal>"). UserError saying why when CUDA is not
// available or there is no such device.
std::unique_ptr<Device> open_cuda_device(int ordinal);

}  // namespace moat::backends
