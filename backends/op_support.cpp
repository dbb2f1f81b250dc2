#include "backends/op_support.h"

#include <algorithm>
#include <array>

namespace moat::backends {

namespace {

struct OpRow {
  std::string_view name;
  bool storage_types;  // may take block-quantised / f8_e4m3 operands or results
};

// Every op of ir/ops.h, in its order.
constexpr OpRow kOps[] = {
    {"input", true},       {"param", true},       {"constant", false},   {"iota", false},
    {"neg", false},        {"abs", false},        {"exp", false},        {"log", false},
    {"sqrt", false},       {"rsqrt", false},      {"recip", false},      {"sin", false},
    {"cos", false},        {"tanh", false},       {"sigmoid", false},    {"silu", false},
    {"add", false},        {"sub", false},        {"mul", false},        {"div", false},
    {"max", false},        {"min", false},        {"pow", false},        {"cmp_lt", false},
    {"cmp_le", false},     {"cmp_eq", false},     {"select", false},     {"reduce_sum", false},
    {"reduce_max", false}, {"matmul", true},      {"gather", true},      {"take_along", false},
    {"write_rows", true},  {"reshape", true},     {"permute", true},     {"slice", true},
    {"concat", false},     {"broadcast", true},   {"cast", true},        {"topk", false},
    {"kth_largest", false}, {"rms_norm", false},   {"softmax", false},    {"rope", false},       {"attention", true},
    {"moe", true},
};

// Element types kernels compute on directly; every other type is storage.
constexpr std::string_view kArithmetic[] = {"f32", "f16", "bf16", "i64", "i32", "i8", "u8", "bool"};

bool contains(auto&& range, std::string_view name) {
  return std::find(std::begin(range), std::end(range), name) != std::end(range);
}

}  // namespace

bool jit_supports_op(std::string_view op, std::span<const std::string> dtypes,
                     std::span<const std::string> device_dtypes) {
  const OpRow* row = std::find_if(std::begin(kOps), std::end(kOps), [&](const OpRow& r) { return r.name == op; });
  if (row == std::end(kOps)) return false;
  // An arithmetic type must be one the device computes with; any other type is storage
  // (block-quantised, f8) that the JIT decodes with byte loads and integer arithmetic on
  // every device, so only the op decides.
  return std::all_of(dtypes.begin(), dtypes.end(), [&](const std::string& t) {
    return contains(kArithmetic, t) ? contains(device_dtypes, t) : row->storage_types;
  });
}

std::span<const std::string_view> lowered_op_names() {
  static const auto names = [] {
    std::array<std::string_view, std::size(kOps)> out;
    for (size_t i = 0; i < out.size(); ++i) out[i] = kOps[i].name;
    return out;
  }();
  return names;
}
std::span<const std::string_view> arithmetic_dtype_names() { return kArithmetic; }

}  // namespace moat::backends
