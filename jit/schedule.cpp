#include "jit/schedule.h"

#include <algorithm>

#include "jit/target.h"

namespace moat::jit {

Schedule schedule_for(const Target& target, const Capabilities& caps) {
  const ScheduleDefaults& d = target.schedule;
  Schedule s;
  s.local_memory_bytes = caps.local_memory_bytes;
  s.sub_group_size = caps.sub_group_shuffle ? std::max(1, caps.sub_group_size) : 1;
  s.int8_dot = caps.int8_dot;
  if (!d.gpu) {
    s.vector_lanes = std::clamp(caps.vector_bits / 32, d.min_vector_lanes, d.max_vector_lanes);
    return s;
  }
  s.gpu = true;
  s.work_group_size = std::clamp(caps.max_work_group_size, 1, d.work_group_size);
  s.vector_lanes = 1;
  return s;
}

}  // namespace moat::jit
