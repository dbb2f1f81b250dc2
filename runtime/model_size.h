// What a DeepSeek model's weights weigh, and how many of their bytes one decoded token
// reads: the numerator of decode's share of memory bandwidth.
#pragma once

#include <cstdint>
#include <string>

#include "frontend/models/deepseek_weights.h"

namespace moat::runtime {

struct ModelSize {
  uint64_t bytes = 0;   // every weight tensor as loaded (as the device holds them)
  uint64_t params = 0;  // elements of every weight tensor
  // Weight bytes one decode step reads: every non-expert weight (attention, norms,
  // routers, shared experts, the output matrix) in full; of the token-embedding table
  // one row (all of it when it doubles as the output matrix); of each MoE layer's
  // routed experts (`*_exps` tensors, stacked [n_expert, ...]) the n_expert_used of
  // n_expert that the router picks. Cache reads are not included.
  uint64_t decode_bytes_per_token = 0;
  std::string label;  // llama-bench's model_type: "deepseek2 176.1K F32"
};

ModelSize model_size(const models::DeepSeekModel& model);

}  // namespace moat::runtime
