// The ggml tensor type table, value type names and Value's typed getters.
#include "frontend/gguf.h"

#include <cstdint>

#include "support/error.h"

namespace moat::gguf {

namespace {
struct GgmlTypeInfo {
  uint32_t id;
  std::string_view name;
  int64_t block_elems;
  int64_t block_bytes;
};

// Block sizes and bytes per block, as ggml's type traits define them.
constexpr GgmlTypeInfo kTypes[] = {
    {0, "F32", 1, 4},          {1, "F16", 1, 2},         {2, "Q4_0", 32, 18},      {3, "Q4_1", 32, 20},
    {6, "Q5_0", 32, 22},       {7, "Q5_1", 32, 24},      {8, "Q8_0", 32, 34},      {9, "Q8_1", 32, 36},
    {10, "Q2_K", 256, 84},     {11, "Q3_K", 256, 110},   {12, "Q4_K", 256, 144},   {13, "Q5_K", 256, 176},
    {14, "Q6_K", 256, 210},    {15, "Q8_K", 256, 292},   {16, "IQ2_XXS", 256, 66}, {17, "IQ2_XS", 256, 74},
    {18, "IQ3_XXS", 256, 98},  {19, "IQ1_S", 256, 50},   {20, "IQ4_NL", 32, 18},   {21, "IQ3_S", 256, 110},
    {22, "IQ2_S", 256, 82},    {23, "IQ4_XS", 256, 136}, {24, "I8", 1, 1},         {25, "I16", 1, 2},
    {26, "I32", 1, 4},         {27, "I64", 1, 8},        {28, "F64", 1, 8},        {29, "IQ1_M", 256, 56},
    {30, "BF16", 1, 2},        {34, "TQ1_0", 256, 54},   {35, "TQ2_0", 256, 66},   {39, "MXFP4", 32, 17},
};

const GgmlTypeInfo* lookup(uint32_t id) {
  for (const GgmlTypeInfo& t : kTypes)
    if (t.id == id) return &t;
  return nullptr;
}
}  // namespace

std::string_view value_type_name(ValueType type) {
  static constexpr std::string_view kNames[] = {"u8",  "i8",  "u16",    "i16",   "u32", "i32", "f32",
                                                "bool", "string", "array", "u64", "i64", "f64"};
  auto i = static_cast<uint32_t>(type);
  return i < std::size(kNames) ? kNames[i] : "unknown";
}

std::optional<std::string_view> ggml_type_name_of(uint32_t id) {
  const GgmlTypeInfo* t = lookup(id);
  return t ? std::optional(t->name) : std::nullopt;
}
std::string_view ggml_type_name(GgmlType type) {
  const GgmlTypeInfo* t = lookup(static_cast<uint32_t>(type));
  return t ? t->name : "unknown";
}
int64_t ggml_block_elems(GgmlType type) {
  const GgmlTypeInfo* t = lookup(static_cast<uint32_t>(type));
  return t ? t->block_elems : 0;
}
int64_t ggml_block_bytes(GgmlType type) {
  const GgmlTypeInfo* t = lookup(static_cast<uint32_t>(type));
  return t ? t->block_bytes : 0;
}

std::optional<ir::DType> to_ir_dtype(GgmlType type) {
  switch (type) {
    case GgmlType::F32: return ir::DType::f32;
    case GgmlType::F16: return ir::DType::f16;
    case GgmlType::BF16: return ir::DType::bf16;
    case GgmlType::I8: return ir::DType::i8;
    case GgmlType::I32: return ir::DType::i32;
    case GgmlType::I64: return ir::DType::i64;
    case GgmlType::Q8_0: return ir::DType::q8_0;
    case GgmlType::Q4_0: return ir::DType::q4_0;
    case GgmlType::Q4_K: return ir::DType::q4_k;
    case GgmlType::Q6_K: return ir::DType::q6_k;
    case GgmlType::Q4_1: return ir::DType::q4_1;
    case GgmlType::Q5_0: return ir::DType::q5_0;
    case GgmlType::Q5_1: return ir::DType::q5_1;
    case GgmlType::Q2_K: return ir::DType::q2_k;
    case GgmlType::Q3_K: return ir::DType::q3_k;
    case GgmlType::Q5_K: return ir::DType::q5_k;
    case GgmlType::IQ4_NL: return ir::DType::iq4_nl;
    case GgmlType::IQ4_XS: return ir::DType::iq4_xs;
    case GgmlType::MXFP4: return ir::DType::mxfp4;
    case GgmlType::IQ3_XXS: return ir::DType::iq3_xxs;
    case GgmlType::IQ3_S: return ir::DType::iq3_s;
    case GgmlType::IQ2_XXS: return ir::DType::iq2_xxs;
    case GgmlType::IQ2_XS: return ir::DType::iq2_xs;
    case GgmlType::IQ2_S: return ir::DType::iq2_s;
    case GgmlType::IQ1_S: return ir::DType::iq1_s;
    case GgmlType::IQ1_M: return ir::DType::iq1_m;
    default: return std::nullopt;
  }
}

std::string supported_ggml_types() {
  std::string names;
  for (const GgmlTypeInfo& t : kTypes) {
    if (!to_ir_dtype(static_cast<GgmlType>(t.id))) continue;
    if (!names.empty()) names += ", ";
    names += t.name;
  }
  return names;
}

namespace {
bool is_unsigned(ValueType t) {
  return t == ValueType::u8 || t == ValueType::u16 || t == ValueType::u32 || t == ValueType::u64;
}
bool is_signed(ValueType t) {
  return t == ValueType::i8 || t == ValueType::i16 || t == ValueType::i32 || t == ValueType::i64;
}
[[noreturn]] void wrong_type(std::string_view context, const Value& v, std::string_view expected) {
  user_error(context, " is ", value_type_name(v.type), ", expected ", expected);
}
}  // namespace

uint64_t Value::as_u64(std::string_view context) const {
  if (is_unsigned(type)) return u;
  if (is_signed(type)) {
    if (i < 0) user_error(context, " is ", i, ", expected a non-negative integer");
    return static_cast<uint64_t>(i);
  }
  wrong_type(context, *this, "a non-negative integer");
}

int64_t Value::as_i64(std::string_view context) const {
  if (is_signed(type)) return i;
  if (is_unsigned(type)) {
    if (u > static_cast<uint64_t>(INT64_MAX)) user_error(context, " is ", u, ", too large for a signed 64-bit integer");
    return static_cast<int64_t>(u);
  }
  wrong_type(context, *this, "an integer");
}

double Value::as_f64(std::string_view context) const {
  if (type == ValueType::f32 || type == ValueType::f64) return f;
  if (is_unsigned(type)) return static_cast<double>(u);
  if (is_signed(type)) return static_cast<double>(i);
  wrong_type(context, *this, "a number");
}

bool Value::as_bool(std::string_view context) const {
  if (type != ValueType::boolean) wrong_type(context, *this, "a bool");
  return b;
}

const std::string& Value::as_string(std::string_view context) const {
  if (type != ValueType::string) wrong_type(context, *this, "a string");
  return str;
}

const std::vector<Value>& Value::as_array(ValueType elem, std::string_view context) const {
  if (type != ValueType::array) wrong_type(context, *this, cat("an array of ", value_type_name(elem)));
  if (elem_type != elem)
    user_error(context, " is an array of ", value_type_name(elem_type), ", expected an array of ", value_type_name(elem));
  return array;
}

std::vector<int64_t> TensorInfo::shape() const {
  return std::vector<int64_t>(dims.rbegin(), dims.rend());
}

}  // namespace moat::gguf
