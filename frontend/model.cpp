#include "frontend/model.h"

#include <algorithm>
#include <cstdio>

#include "support/strings.h"

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

std::string size_label(const std::string& family, const std::map<ir::DType, uint64_t>& bytes_by_dtype, uint64_t params) {
  // Parameters as llama-bench counts them: "671.0B", "15.7B", "176.1K".
  const char* units[] = {"", "K", "M", "B", "T"};
  double value = static_cast<double>(params);
  int unit = 0;
  while (value >= 1000 && unit < 4) {
    value /= 1000;
    ++unit;
  }
  char count[32];
  std::snprintf(count, sizeof count, unit ? "%.1f%s" : "%.0f%s", value, units[unit]);
  std::string label = cat(family, " ", count);
  auto dominant = std::max_element(bytes_by_dtype.begin(), bytes_by_dtype.end(),
                                   [](const auto& a, const auto& b) { return a.second < b.second; });
  if (dominant == bytes_by_dtype.end()) return label;
  std::string type(ir::dtype_name(dominant->first));
  std::transform(type.begin(), type.end(), type.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  return cat(label, " ", type);
}

}  // namespace moat::models
