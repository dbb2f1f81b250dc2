// The emitter a device's backend takes: Kernel IR -> the Artifact its compile() reads.
#pragma once

#include "backends/device.h"
#include "jit/kir.h"

namespace moat::runtime {

// UserError naming the backend when no emitter exists for it yet.
backends::Artifact emit_for(const backends::DeviceProperties& device, const jit::Kernel& kernel);

}  // namespace moat::runtime
