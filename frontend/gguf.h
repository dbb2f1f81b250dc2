// GGUF v2/v3 (llama.cpp's model format) over a read-only memory mapping.
//
// This is a security boundary: every count, length, dimension, offset and product
// read from the file is bounds- and overflow-checked before it is used, and every
// problem is a UserError naming the file and the byte offset, key or tensor.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ir/dtype.h"

namespace moat::gguf {

enum class ValueType : uint32_t {
  u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7,
  string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12,
};
std::string_view value_type_name(ValueType type);

struct Value {
  ValueType type = ValueType::u8;
  uint64_t u = 0;   // u8 / u16 / u32 / u64
  int64_t i = 0;    // i8 / i16 / i32 / i64
  double f = 0;     // f32 / f64
  bool b = false;   // boolean
  std::string str{};  // string
  ValueType elem_type = ValueType::u8;  // array
  std::vector<Value> array{};           // array (arrays may nest)

  // Typed getters. `context` names the value in the error, e.g. `model.gguf: metadata
  // key K`; the UserError reads "<context> is <type>, expected <what>".
  uint64_t as_u64(std::string_view context) const;  // any integer type with a value >= 0
  int64_t as_i64(std::string_view context) const;   // any integer type with a value <= INT64_MAX
  double as_f64(std::string_view context) const;    // f32, f64 or any integer type
  bool as_bool(std::string_view context) const;
  const std::string& as_string(std::string_view context) const;
  // The elements of an array whose element type is `elem`.
  const std::vector<Value>& as_array(ValueType elem, std::string_view context) const;
};

struct KeyValue {
  std::string key;
  Value value;
};

// ggml tensor types (ggml.h numbering). Only some map to Tensor IR dtypes; the others
// can still be listed by `moat inspect`.
enum class GgmlType : uint32_t {
  F32 = 0, F16 = 1, Q4_0 = 2, Q4_1 = 3, Q5_0 = 6, Q5_1 = 7, Q8_0 = 8, Q8_1 = 9,
  Q2_K = 10, Q3_K = 11, Q4_K = 12, Q5_K = 13, Q6_K = 14, Q8_K = 15,
  IQ2_XXS = 16, IQ2_XS = 17, IQ3_XXS = 18, IQ1_S = 19, IQ4_NL = 20, IQ3_S = 21, IQ2_S = 22, IQ4_XS = 23,
  I8 = 24, I16 = 25, I32 = 26, I64 = 27, F64 = 28, IQ1_M = 29, BF16 = 30, TQ1_0 = 34, TQ2_0 = 35, MXFP4 = 39,
};
// Name, elements per block and bytes per block; nullopt/0 for an unknown id.
std::optional<std::string_view> ggml_type_name_of(uint32_t id);
std::string_view ggml_type_name(GgmlType type);
int64_t ggml_block_elems(GgmlType type);
int64_t ggml_block_bytes(GgmlType type);
std::optional<ir::DType> to_ir_dtype(GgmlType type);
// The names of the tensor types to_ir_dtype maps, in the table's order ("F32, F16, ...").
std::string supported_ggml_types();

struct TensorInfo {
  std::string name;
  std::vector<uint64_t> dims;     // as stored: ne0 (fastest-varying) first
  GgmlType type = GgmlType::F32;
  uint64_t offset = 0;            // bytes, relative to the data section
  uint64_t bytes = 0;             // bytes of the tensor's data
  std::span<const uint8_t> data;  // into the mapping
  std::vector<int64_t> shape() const;  // row-major, outermost first (dims reversed)
};

class File {
 public:
  // Maps and parses a file; tensor data points into the mapping, which the File (and
  // its copies) keep alive. Errors are UserErrors starting with the path.
  static File open(const std::string& path);
  // Parses bytes that the caller keeps alive (tests, fuzzing); `name` is used in messages.
  // Memory use is bounded by bytes.size() (about 100 bytes per metadata value, each of
  // which takes at least one byte of the file), whatever counts the file claims.
  static File parse(std::span<const uint8_t> bytes, std::string name);

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }      // bytes
  uint64_t data_offset() const { return data_offset_; }  // bytes from the start of the file
  const std::vector<KeyValue>& metadata() const { return metadata_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const Value* find(std::string_view key) const;
  const TensorInfo* find_tensor(std::string_view name) const;
  std::string architecture() const;  // general.architecture, or ""

  // Typed lookups (the Value getters above): UserError "<path>: metadata key K is
  // <type>, expected ..." on a wrong type; the get_* ones also "<path>: metadata key K
  // is missing" when the key is absent. find_* return nullopt when absent.
  std::optional<uint64_t> find_u64(std::string_view key) const;  // any integer type >= 0
  std::optional<int64_t> find_i64(std::string_view key) const;   // any integer type that fits
  std::optional<double> find_f64(std::string_view key) const;    // f32, f64 or any integer
  std::optional<std::string> find_string(std::string_view key) const;
  std::optional<bool> find_bool(std::string_view key) const;
  uint64_t get_u64(std::string_view key) const;
  int64_t get_i64(std::string_view key) const;
  double get_f64(std::string_view key) const;
  std::string get_string(std::string_view key) const;
  bool get_bool(std::string_view key) const;

 private:
  std::string path_;
  std::shared_ptr<const void> mapping_;  // keeps an opened file's mapping alive
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t data_offset_ = 0;
  std::vector<KeyValue> metadata_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t, std::less<>> key_index_;     // key -> index in metadata_
  std::map<std::string, size_t, std::less<>> tensor_index_;  // name -> index in tensors_
  friend class Reader;
};

}  // namespace moat::gguf
