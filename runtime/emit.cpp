#include "runtime/emit.h"

#include "runtime/device_target.h"

namespace moat::runtime {

backends::Artifact emit_for(const backends::DeviceProperties& device, const jit::Kernel& kernel,
                            std::string_view opencl_format) {
  const jit::Target& target = target_of(device, opencl_format);
  return backends::Artifact::text(std::string(target.format), target.print(kernel, capabilities_of(device)), {kernel.name});
}

}  // namespace moat::runtime
