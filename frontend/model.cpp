#include "frontend/model.h"

namespace moat::models {

uint64_t CachePart::bytes(ir::DType cache, int64_t context) const {
  return static_cast<uint64_t>(ir::tensor_bytes(dtype(cache), {rows(context), width}));
}

uint64_t cache_bytes(const std::vector<CachePart>& layout, ir::DType cache, int64_t context) {
  uint64_t bytes = 0;
  for (const CachePart& part : layout) bytes += part.bytes(cache, context);
  return bytes;
}

double cache_bytes_per_token(const std::vector<CachePart>& layout, ir::DType cache) {
  double bytes = 0;
  for (const CachePart& part : layout)
    if (part.tokens_per_row > 0)
      bytes += static_cast<double>(ir::tensor_bytes(part.dtype(cache), {1, part.width})) / static_cast<double>(part.tokens_per_row);
  return bytes;
}

}  // namespace moat::models
