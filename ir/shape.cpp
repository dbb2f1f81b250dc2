#include "ir/shape.h"

#include "support/checked.h"
#include "support/error.h"

namespace moat::ir {

Shape static_shape(const std::vector<int64_t>& dims) {
  Shape shape;
  for (int64_t d : dims) shape.push_back(Dim::of(d));
  return shape;
}

bool is_static(const Shape& shape) {
  for (const Dim& d : shape)
    if (!d.is_static()) return false;
  return true;
}

std::optional<int64_t> static_elems(const Shape& shape) {
  int64_t n = 1;
  for (const Dim& d : shape)
    if (d.is_static() && !checked_mul(n, d.value, &n)) return std::nullopt;
  return n;
}

std::vector<int64_t> resolve(const Shape& shape, const SymbolValues& symbols) {
  std::vector<int64_t> dims;
  for (const Dim& d : shape) {
    if (d.is_static()) {
      dims.push_back(d.value);
      continue;
    }
    auto it = symbols.find(d.symbol);
    if (it == symbols.end())
      user_error("symbolic dimension ", d.symbol, " has no value (bind it, e.g. from an input's shape)");
    dims.push_back(it->second);
  }
  return dims;
}

std::string to_string(const Dim& dim) { return dim.is_static() ? std::to_string(dim.value) : dim.symbol; }

std::string to_string(const Shape& shape) {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) out += ", ";
    out += to_string(shape[i]);
  }
  return out + "]";
}

std::string to_string(const TensorType& type) {
  return std::string(dtype_name(type.dtype)) + to_string(type.shape);
}

}  // namespace moat::ir
