// Reference decoders of iq4_nl, iq4_xs and mxfp4 (ir/quant_families.h).
#include "ir/quant_families.h"

#include "support/error.h"

namespace moat::ir {

void dequantize_iq4_blocks(DType type, const uint8_t*, float*, int64_t) {
  MOAT_INTERNAL_ERROR("no reference decoder for ", dtype_name(type), " yet");
}

}  // namespace moat::ir
