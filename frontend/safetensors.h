// Reader of Hugging Face safetensors files (one file, or a folder of shards with a
// model.safetensors.index.json), straight over a read-only memory mapping.
//
// Layout of a .safetensors file:
//   [8 bytes: N, little-endian u64][N bytes: JSON header][data section]
// The header maps each tensor name to {"dtype", "shape", "data_offsets": [begin, end]}
// (offsets relative to the data section) plus an optional "__metadata__" object of
// strings. Files come from the internet: every number is checked before use and every
// problem is a UserError that starts with the file's path.
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

namespace moat {
class MappedFile;
}

namespace moat::safetensors {

// X(id, bytes per element, Tensor IR type or nullopt). The id is the format's name.
#define MOAT_SAFETENSORS_DTYPES(X)               \
  X(F64, 8, std::nullopt)                        \
  X(F32, 4, ir::DType::f32)                      \
  X(F16, 2, ir::DType::f16)                      \
  X(BF16, 2, ir::DType::bf16)                    \
  X(F8_E4M3, 1, ir::DType::f8_e4m3)              \
  X(F8_E5M2, 1, std::nullopt)                    \
  X(F8_E8M0, 1, std::nullopt) /* power-of-two scales (UE8M0), read by their users */ \
  X(I64, 8, ir::DType::i64)                      \
  X(I32, 4, ir::DType::i32)                      \
  X(I16, 2, std::nullopt)                        \
  X(I8, 1, ir::DType::i8)                        \
  X(U8, 1, ir::DType::u8)                        \
  X(BOOL, 1, ir::DType::boolean)

enum class DType : uint8_t {
#define MOAT_X(id, bytes, ir_type) id,
  MOAT_SAFETENSORS_DTYPES(MOAT_X)
#undef MOAT_X
};

std::string_view dtype_name(DType type);                 // "F8_E4M3", as in the format
std::optional<DType> parse_dtype(std::string_view name);  // exact, case-sensitive
int64_t dtype_bytes(DType type);                          // bytes per element
std::optional<ir::DType> to_ir_dtype(DType type);         // nullopt: no Tensor IR equivalent

// Largest header accepted (the reference implementation's limit).
inline constexpr uint64_t kMaxHeaderBytes = 100ull << 20;

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;       // row-major, every dim >= 0
  uint64_t begin = 0, end = 0;      // bytes, relative to the data section
  std::span<const uint8_t> data;    // [begin, end) of the data section, inside the mapping
  std::string file;                 // path (or name) of the file holding it

  uint64_t nbytes() const { return end - begin; }
  int64_t elements() const;         // product of shape (checked when parsed)
};

// One .safetensors file. Copies share the mapping.
class File {
 public:
  // Maps `path` and parses its header. Throws UserError naming the file.
  static File open(const std::string& path);
  // Parses a file image in memory; `bytes` must outlive the result (not owned).
  // `name` prefixes error messages and fills TensorInfo::file.
  static File parse(std::span<const uint8_t> bytes, std::string name);

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // sorted by begin
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const TensorInfo* find(std::string_view name) const;  // nullptr when absent
  std::span<const uint8_t> bytes() const { return bytes_; }  // the whole file

 private:
  std::string path_;
  std::shared_ptr<const MappedFile> mapping_;  // null for File::parse
  std::span<const uint8_t> bytes_;
  std::vector<TensorInfo> tensors_;
  std::vector<uint32_t> by_name_;  // indices into tensors_, sorted by name
  std::map<std::string, std::string> metadata_;
};

// A whole model's weights: a Hugging Face folder, one .safetensors file, or an
// index json ({"weight_map": {tensor: shard file name}}).
class Model {
 public:
  // A folder: its model.safetensors.index.json if present, else model.safetensors,
  // else every *.safetensors in it (sorted by name; a tensor in two files is an error).
  // A file: an index when the name ends in ".json", else one safetensors file.
  static Model open(const std::string& path);

  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // sorted by name
  const TensorInfo* find(std::string_view name) const;
  const std::vector<std::string>& shard_paths() const { return shard_paths_; }
  uint64_t total_bytes() const { return total_bytes_; }  // sum of the listed tensors' bytes

 private:
  static Model from_index(const std::string& index_path);
  static Model from_files(const std::vector<std::string>& paths);

  std::vector<File> shards_;  // keeps the mappings alive
  std::vector<std::string> shard_paths_;
  std::vector<TensorInfo> tensors_;
  uint64_t total_bytes_ = 0;
};

}  // namespace moat::safetensors
