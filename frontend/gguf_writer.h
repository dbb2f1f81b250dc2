// GGUF v3 writer (little-endian), for tests and tools: metadata in insertion order
// (setting a key again replaces its value in place), tensor infos in insertion order,
// the data section and every tensor's data padded to the alignment.
//
// The writer does not validate what it is given beyond array element types (tests use
// it to build malformed files): dims, type and data size are written as passed.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "frontend/gguf.h"

namespace moat::gguf {

class Writer {
 public:
  void set(std::string key, Value value);
  void set_u8(std::string key, uint8_t v);
  void set_i8(std::string key, int8_t v);
  void set_u16(std::string key, uint16_t v);
  void set_i16(std::string key, int16_t v);
  void set_u32(std::string key, uint32_t v);
  void set_i32(std::string key, int32_t v);
  void set_u64(std::string key, uint64_t v);
  void set_i64(std::string key, int64_t v);
  void set_f32(std::string key, float v);
  void set_f64(std::string key, double v);
  void set_bool(std::string key, bool v);
  void set_string(std::string key, std::string v);
  void set_string_array(std::string key, const std::vector<std::string>& items);
  void set_i32_array(std::string key, const std::vector<int32_t>& items);
  void set_f32_array(std::string key, const std::vector<float>& items);
  // An array of `elem` values (each item's type must be `elem`; items may be arrays).
  void set_array(std::string key, ValueType elem, std::vector<Value> items);
  // A power of two <= 2^31; also written as general.alignment (u32). Default 32.
  // (Setting general.alignment with set_u32 writes the key but keeps the layout: tests
  // use that to make files whose key disagrees with their padding.)
  void set_alignment(uint64_t alignment);

  // dims: ne0 (fastest-varying) first, as GGUF stores them; data: the tensor's bytes.
  void add_tensor(std::string name, GgmlType type, std::vector<uint64_t> dims, std::span<const uint8_t> data);

  std::vector<uint8_t> to_bytes() const;
  void write(const std::string& path) const;  // UserError naming the path on failure

 private:
  struct Tensor {
    std::string name;
    GgmlType type;
    std::vector<uint64_t> dims;
    std::vector<uint8_t> data;
  };
  std::vector<KeyValue> metadata_;
  std::vector<Tensor> tensors_;
  uint64_t alignment_ = 32;
};

}  // namespace moat::gguf
