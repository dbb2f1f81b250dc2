#include "jit/schedule.h"

#include <algorithm>

namespace moat::jit {

Schedule schedule_for(const backends::DeviceProperties& device) {
  Schedule s;
  if (device.info.backend == "cpu") {
    s.vector_lanes = std::clamp(device.vector_bits / 32, 4, 16);
    return s;
  }
  s.gpu = true;
  s.work_group_size = std::clamp(device.max_work_group_size, 1, 256);
  s.vector_lanes = 1;
  return s;
}

}  // namespace moat::jit
