// Weights in the packed CPU layout (jit/weight_packing.h): the lowering names a packed
// weight's two plan buffers "NAME#quads16" and "NAME#scales16" (a float weight's one,
// "NAME#tiles16"); this makes their host tensors from the weight NAME, once per weight,
// and keeps them.
#pragma once

#include <map>
#include <string>

#include "ir/tensor.h"

namespace moat::runtime {

class PackedWeights {
 public:
  // The tensor of plan buffer `buffer_name` when it is a packed weight's half, made from
  // `weights` (UserError when the weight is missing); nullptr for any other name.
  const ir::HostTensor* find(const std::string& buffer_name, const std::map<std::string, ir::HostTensor>& weights);

 private:
  std::map<std::string, ir::HostTensor> packed_;  // by plan buffer name
};

}  // namespace moat::runtime
