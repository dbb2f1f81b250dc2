// The emitter a device's backend takes: Kernel IR -> the Artifact its compile() reads.
#pragma once

#include "backends/device.h"
#include "jit/kir.h"

namespace moat::runtime {

// `opencl_format` picks the form for OpenCL devices: "cl", "spv" or "bc-spir". UserError
// naming the backend when no emitter exists for it yet.
backends::Artifact emit_for(const backends::DeviceProperties& device, const jit::Kernel& kernel,
                            std::string_view opencl_format = "cl");

}  // namespace moat::runtime
