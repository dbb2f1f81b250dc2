// What the runtime's session tests share: the demo model, loaded once per test binary,
// and the ids of every device this machine has.
#pragma once

#include <algorithm>
#include <span>
#include <string>
#include <vector>

#include "backends/registry.h"
#include "frontend/models/deepseek_weights.h"

namespace moat::testing {

inline const models::DeepSeekModel& demo_model() {
  static const models::DeepSeekModel model =
      models::load_deepseek(std::string(MOAT_SOURCE_DIR) + "/models/kjv-tiny.gguf");
  return model;
}

// Every device this machine has: the CPU, OpenCL devices (PoCL copies to and from its
// buffers as a discrete GPU would), and CUDA / HIP GPUs where present.
inline std::vector<std::string> session_device_ids() {
  std::vector<std::string> ids;
  for (const backends::DeviceInfo& d : backends::enumerate_devices().devices) ids.push_back(d.id);
  if (std::find(ids.begin(), ids.end(), "cpu") == ids.end()) ids.insert(ids.begin(), "cpu");
  return ids;
}

inline int32_t argmax(std::span<const float> logits) {
  return static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
}

}  // namespace moat::testing
