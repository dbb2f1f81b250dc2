// The driver's PTX JIT (internal to backends/cuda): PTX -> cubin with the driver's
// linker (cuLink*), and loading a cubin or PTX image as a module, each with the JIT's
// error and info logs in the message when it fails. The caller makes the device's
// context current (the linker targets the current context's device).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "backends/cuda/cuda_api.h"

namespace moat::backends::cuda {

// PTX text -> cubin for the current context's device. `what` names the code in
// errors ("kernels saxpy"). UserError with the JIT log when the PTX does not assemble.
std::vector<uint8_t> link_ptx(const CudaApi& api, std::string_view ptx, std::string_view what);

// Loads a "cubin" (bytes) or "ptx" (text, JIT-compiled now) image into the current
// context. UserError with the JIT log when the image does not load (a cubin built for
// another architecture, invalid PTX).
CUmodule load_image(const CudaApi& api, std::string_view format, const std::vector<uint8_t>& bytes,
                    std::string_view what);

}  // namespace moat::backends::cuda
