// Reference decoders of q2_k, q3_k, q5_k, q8_k (ir/quant_families.h).
#include "ir/quant_families.h"

#include "support/error.h"

namespace moat::ir {

void dequantize_k_blocks(DType type, const uint8_t*, float*, int64_t) {
  MOAT_INTERNAL_ERROR("no reference decoder for ", dtype_name(type), " yet");
}

}  // namespace moat::ir
