// Shapes of the Tensor IR: row-major, outermost dimension first. A dimension is either
// static (a non-negative count) or symbolic (a name such as `T` for the number of new
// tokens or `S` for the cache length), bound to a value when a plan is specialised or
// the graph is interpreted.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "ir/dtype.h"

namespace moat::ir {

struct Dim {
  int64_t value = 0;   // elements; meaningful when `symbol` is empty
  std::string symbol;  // non-empty for a symbolic dimension

  static Dim of(int64_t count) { return Dim{count, {}}; }
  static Dim sym(std::string name) { return Dim{0, std::move(name)}; }
  bool is_static() const { return symbol.empty(); }
  bool is_one() const { return is_static() && value == 1; }
  bool operator==(const Dim&) const = default;
};

using Shape = std::vector<Dim>;
using SymbolValues = std::map<std::string, int64_t>;

struct TensorType {
  DType dtype = DType::f32;
  Shape shape;
  bool operator==(const TensorType&) const = default;
};

Shape static_shape(const std::vector<int64_t>& dims);
bool is_static(const Shape& shape);
// Product of the static dimensions; symbolic ones count as 1. nullopt on overflow.
std::optional<int64_t> static_elems(const Shape& shape);
// Concrete dimensions with symbols replaced by their values. Throws UserError naming
// the symbol when one is unbound.
std::vector<int64_t> resolve(const Shape& shape, const SymbolValues& symbols);

std::string to_string(const Dim& dim);
std::string to_string(const Shape& shape);  // "[T, 2048]"
std::string to_string(const TensorType& type);  // "f32[T, 2048]"

}  // namespace moat::ir
