// Block formats of the grid IQ types (iq3_xxs, iq3_s, iq2_xxs, iq2_xs, iq2_s, iq1_s, iq1_m): fields and decode rules (jit/block_formats.h).
#include "jit/block_rules.h"

namespace moat::jit {

std::vector<BlockFormat> iq_grid_block_formats() { return {}; }

}  // namespace moat::jit
