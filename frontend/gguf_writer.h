// GGUF v3 writer (little-endian), for tests and tools: metadata in insertion order,
// tensor data padded to the alignment.
#pragma once

#include <span>
#include <string>
#include <vector>

#include "frontend/gguf.h"

namespace moat::gguf {

class Writer {
 public:
  void set(std::string key, Value value);
  void set_u32(std::string key, uint32_t v);
  void set_u64(std::string key, uint64_t v);
  void set_i32(std::string key, int32_t v);
  void set_f32(std::string key, float v);
  void set_bool(std::string key, bool v);
  void set_string(std::string key, std::string v);
  void set_string_array(std::string key, const std::vector<std::string>& items);
  void set_alignment(uint64_t alignment);  // also written as general.alignment (u32)

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
