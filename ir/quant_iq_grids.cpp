// Reference decoders of the grid IQ types (iq3_xxs, iq3_s, iq2_xxs, iq2_xs, iq2_s, iq1_s, iq1_m) (ir/quant_families.h).
#include "ir/quant_families.h"

#include "support/error.h"

namespace moat::ir {

void dequantize_iq_grid_blocks(DType type, const uint8_t*, float*, int64_t) {
  MOAT_INTERNAL_ERROR("no reference decoder for ", dtype_name(type), " yet");
}

}  // namespace moat::ir
