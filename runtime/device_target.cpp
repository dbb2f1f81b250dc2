#include "runtime/device_target.h"

#include "support/error.h"

namespace moat::runtime {

const jit::Target& target_of(const backends::DeviceProperties& device, std::string_view format) {
  const jit::Target* target = jit::target_for_backend(device.info.backend, format);
  if (!target)
    user_error("device ", device.info.id, ": this build has no code generator for the ", device.info.backend,
               " backend yet; use --device cpu");
  return *target;
}

jit::Capabilities capabilities_of(const backends::DeviceProperties& device) {
  const jit::Target& target = target_of(device);
  jit::Capabilities caps;
  if (const jit::Capabilities* known = jit::find_architecture(target, device.info.arch)) caps = *known;
  caps.arch = device.info.arch;
  if (device.sub_group_size > 0) caps.sub_group_size = device.sub_group_size;
  caps.max_work_group_size = device.max_work_group_size;
  caps.local_memory_bytes = device.local_memory_bytes;
  caps.vector_bits = device.vector_bits;
  if (device.info.has_feature("avx512vnni") && device.info.has_feature("avx512vl")) caps.int8_dot = true;
  if (device.info.has_feature("ssse3")) caps.byte_shuffle = true;
  return caps;
}

jit::Schedule schedule_for(const backends::DeviceProperties& device) {
  return jit::schedule_for(target_of(device), capabilities_of(device));
}

}  // namespace moat::runtime
