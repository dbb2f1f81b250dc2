// Block formats of the IQ types and mxfp4: fields and decode rules (jit/block_formats.h).
#include "jit/block_rules.h"

namespace moat::jit {

std::vector<BlockFormat> iq_block_formats() { return {}; }

}  // namespace moat::jit
