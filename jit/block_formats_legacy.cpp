// Block formats of q4_1, q5_0, q5_1: fields and decode rules (jit/block_formats.h).
#include "jit/block_rules.h"

namespace moat::jit {

std::vector<BlockFormat> legacy_block_formats() { return {}; }

}  // namespace moat::jit
