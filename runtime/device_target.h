// A device as the JIT sees it: the row of the target table (jit/target.h) that its
// backend loads, its capabilities — the table's record of its architecture, with what
// the device itself reports — and the schedule the lowering uses for it. The one place
// backends::DeviceProperties becomes jit::Capabilities.
#pragma once

#include <string_view>

#include "backends/device.h"
#include "jit/capabilities.h"
#include "jit/schedule.h"
#include "jit/target.h"

namespace moat::runtime {

// The target of `device`'s backend in artifact `format` ("cl", "spv", "bc-spir": the
// forms OpenCL devices take), else the backend's default. UserError naming the backend
// when no target is loaded by it.
const jit::Target& target_of(const backends::DeviceProperties& device, std::string_view format = {});

// The device's capabilities: the table's record when it knows the device's
// architecture (matrix units, sub-group shuffles, int8 products, native f16 / bf16),
// else none of those; with the device's own sub-group size, work-group and local-memory
// limits and vector width; int8_dot on a CPU that lists AVX-512 VNNI and AVX512VL.
jit::Capabilities capabilities_of(const backends::DeviceProperties& device);

// jit::schedule_for(target_of(device), capabilities_of(device)).
jit::Schedule schedule_for(const backends::DeviceProperties& device);

}  // namespace moat::runtime
