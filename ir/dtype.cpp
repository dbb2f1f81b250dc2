#include "ir/dtype.h"

#include "support/checked.h"

namespace moat::ir {

namespace {
struct DTypeInfo {
  std::string_view name;
  int64_t block_elems;
  int64_t block_bytes;
  DTypeKind kind;
};

constexpr DTypeInfo kInfo[] = {
#define MOAT_X(id, name, elems, bytes, kind) {name, elems, bytes, DTypeKind::kind},
    MOAT_IR_DTYPES(MOAT_X)
#undef MOAT_X
};

const DTypeInfo& info(DType type) { return kInfo[static_cast<int>(type)]; }
}  // namespace

std::string_view dtype_name(DType type) { return info(type).name; }
DTypeKind dtype_kind(DType type) { return info(type).kind; }
int64_t dtype_block_elems(DType type) { return info(type).block_elems; }
int64_t dtype_block_bytes(DType type) { return info(type).block_bytes; }

std::optional<DType> parse_dtype(std::string_view name) {
  for (size_t i = 0; i < std::size(kInfo); ++i)
    if (kInfo[i].name == name) return static_cast<DType>(i);
  return std::nullopt;
}

std::optional<int64_t> dtype_row_bytes(DType type, int64_t elems) {
  const DTypeInfo& i = info(type);
  if (elems < 0 || elems % i.block_elems != 0) return std::nullopt;
  int64_t bytes = 0;
  if (!checked_mul(elems / i.block_elems, i.block_bytes, &bytes)) return std::nullopt;
  return bytes;
}

}  // namespace moat::ir
