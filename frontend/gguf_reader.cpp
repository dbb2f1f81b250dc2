// GGUF reader. Layout (little-endian): "GGUF", u32 version, u64 tensor count, u64
// key-value count, the key-values, the tensor infos, padding to `general.alignment`,
// then the data section that tensor offsets are relative to.
//
// The checks follow llama.cpp's gguf.cpp (gguf_init_from_reader) with three deliberate
// differences: nested arrays are accepted (gguf-py writes them), tensor names may be
// longer than ggml's 63 characters, and tensors may sit anywhere in the data section as
// long as they are aligned and inside the file (llama.cpp wants them packed in order).
#include <cstring>

#include "frontend/gguf.h"
#include "support/checked.h"
#include "support/error.h"
#include "support/mapped_file.h"

namespace moat::gguf {

namespace {
constexpr int kMaxArrayDepth = 16;  // arrays of arrays of ...
constexpr uint32_t kMaxDims = 4;    // GGML_MAX_DIMS
constexpr uint64_t kDefaultAlignment = 32;
constexpr uint64_t kMinKeyValueBytes = 8 + 4 + 1;        // key length, type, a u8 value
constexpr uint64_t kMinTensorInfoBytes = 8 + 4 + 4 + 8;  // name length, n_dims = 0, type, offset

// Smallest number of bytes one value of `type` takes in the file (for bounding counts).
uint64_t min_value_bytes(ValueType type) {
  switch (type) {
    case ValueType::u8: case ValueType::i8: case ValueType::boolean: return 1;
    case ValueType::u16: case ValueType::i16: return 2;
    case ValueType::u32: case ValueType::i32: case ValueType::f32: return 4;
    case ValueType::u64: case ValueType::i64: case ValueType::f64: case ValueType::string: return 8;
    case ValueType::array: return 4 + 8;  // element type, count
  }
  return 1;
}

bool is_valid_value_type(uint32_t id) { return id <= static_cast<uint32_t>(ValueType::f64); }
}  // namespace

class Reader {
 public:
  Reader(std::span<const uint8_t> bytes, std::string name) : bytes_(bytes), name_(std::move(name)) {}

  File read() {
    File file;
    file.path_ = name_;
    file.version_ = header();
    uint64_t n_tensors = u64("the tensor count", nullptr);
    uint64_t n_kv = u64("the metadata count", nullptr);
    if (n_kv > remaining() / kMinKeyValueBytes)
      fail(16, cat("metadata count ", n_kv, " is larger than the file can hold (the file is truncated or corrupt)"));
    file.metadata_.reserve(n_kv);
    for (uint64_t k = 0; k < n_kv; ++k) key_value(file);
    file.alignment_ = alignment(file);
    if (n_tensors > remaining() / kMinTensorInfoBytes)
      fail(8, cat("tensor count ", n_tensors, " is larger than the file can hold (the file is truncated or corrupt)"));
    file.tensors_.reserve(n_tensors);
    for (uint64_t t = 0; t < n_tensors; ++t) tensor_info(file);
    data_section(file);
    return file;
  }

 private:
  // Magic and version; returns the version.
  uint32_t header() {
    if (bytes_.size() < 4 || std::memcmp(bytes_.data(), "GGUF", 4) != 0)
      user_error(name_, ": not a GGUF file (the first 4 bytes are not 'GGUF'); give a GGUF model file or a Hugging Face "
                 "model folder");
    pos_ = 4;
    uint32_t version = u32("the version", nullptr);
    if (version == 1) fail(4, "GGUF version 1 is too old; re-convert the model with a current llama.cpp");
    if ((version & 0xffff) == 0)
      fail(4, cat("GGUF version ", version, " looks byte-swapped: this is a big-endian file, and moatless reads "
                  "little-endian files only (convert it with gguf-py's gguf-convert-endian)"));
    if (version != 2 && version != 3) fail(4, cat("unsupported GGUF version ", version, " (supported: 2 and 3)"));
    return version;
  }

  void key_value(File& file) {
    uint64_t at = pos_;
    KeyValue kv;
    kv.key = string("a metadata key", nullptr);
    if (kv.key.empty()) fail(at, cat("metadata key #", file.metadata_.size(), " is empty"));
    if (file.key_index_.count(kv.key)) fail(at, cat("metadata key ", quoted(kv.key), " appears twice"));
    uint32_t type = u32("a metadata type", &kv.key);
    if (!is_valid_value_type(type)) fail(pos_ - 4, cat("metadata key ", quoted(kv.key), " has unknown value type ", type));
    kv.value = value(static_cast<ValueType>(type), 0, kv.key);
    file.key_index_.emplace(kv.key, file.metadata_.size());
    key_offsets_.push_back(at);
    file.metadata_.push_back(std::move(kv));
  }

  // general.alignment: a u32 power of two when present (llama.cpp's rule), else 32.
  uint64_t alignment(const File& file) {
    auto it = file.key_index_.find("general.alignment");
    if (it == file.key_index_.end()) return kDefaultAlignment;
    const Value& v = file.metadata_[it->second].value;
    if (v.type != ValueType::u32)
      fail(key_offsets_[it->second],
           cat("metadata key general.alignment is ", value_type_name(v.type), ", expected a u32 power of two"));
    if (v.u == 0 || (v.u & (v.u - 1)) != 0)
      fail(key_offsets_[it->second], cat("metadata key general.alignment is ", v.u, ", expected a power of two"));
    return v.u;
  }

  void tensor_info(File& file) {
    uint64_t at = pos_;
    TensorInfo t;
    t.name = string("a tensor name", nullptr);
    if (file.tensor_index_.count(t.name)) fail(at, cat("tensor ", quoted(t.name), " appears twice"));
    uint32_t n_dims = u32("a tensor's dimension count", &t.name);
    if (n_dims > kMaxDims)
      fail(pos_ - 4, cat("tensor ", quoted(t.name), " has ", n_dims, " dimensions (at most ", kMaxDims, ")"));
    uint64_t elems = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = u64("a tensor dimension", &t.name);
      // ggml keeps dimensions and element counts in int64_t.
      if (dim > static_cast<uint64_t>(INT64_MAX) || !checked_mul(elems, dim, &elems) ||
          elems > static_cast<uint64_t>(INT64_MAX))
        fail(pos_ - 8, cat("tensor ", quoted(t.name), " has too many elements (dimension ", d, " is ", dim, ")"));
      t.dims.push_back(dim);
    }
    uint32_t type_id = u32("a tensor type", &t.name);
    if (!ggml_type_name_of(type_id))
      fail(pos_ - 4, cat("tensor ", quoted(t.name), " has unknown ggml type ", type_id,
                         " (the file is newer than this moatless, or corrupt)"));
    t.type = static_cast<GgmlType>(type_id);
    uint64_t block = static_cast<uint64_t>(ggml_block_elems(t.type));
    uint64_t ne0 = t.dims.empty() ? 1 : t.dims[0];
    if (ne0 % block != 0)
      fail(at, cat("tensor ", quoted(t.name), ": first dimension ", ne0, " is not a multiple of the ",
                   ggml_type_name(t.type), " block size ", block));
    if (!checked_mul(elems / block, static_cast<uint64_t>(ggml_block_bytes(t.type)), &t.bytes))
      fail(at, cat("tensor ", quoted(t.name), " is too large (", elems, " elements of ", ggml_type_name(t.type), ")"));
    t.offset = u64("a tensor offset", &t.name);
    if (t.offset % file.alignment_ != 0)
      fail(pos_ - 8, cat("tensor ", quoted(t.name), " data offset ", t.offset, " is not a multiple of the alignment ",
                         file.alignment_));
    file.tensor_index_.emplace(t.name, file.tensors_.size());
    file.tensors_.push_back(std::move(t));
  }

  // Places the data section after the tensor infos and points each tensor into it.
  void data_section(File& file) {
    uint64_t data_offset = 0;
    if (!checked_align_up(pos_, file.alignment_, &data_offset)) fail(pos_, "the data section's offset overflows");
    if (data_offset > bytes_.size()) {
      // Metadata-only files (e.g. vocabularies) may end without the final padding.
      if (!file.tensors_.empty())
        fail(pos_, cat("the data section (at byte ", data_offset, ") starts past the end of the file (",
                       bytes_.size(), " bytes); the file is truncated"));
      data_offset = bytes_.size();
    }
    file.data_offset_ = data_offset;
    uint64_t data_size = bytes_.size() - data_offset;
    for (TensorInfo& t : file.tensors_) {
      uint64_t end = 0;
      if (!checked_add(t.offset, t.bytes, &end) || end > data_size)
        fail(data_offset, cat("tensor ", quoted(t.name), " (", t.bytes, " bytes at data offset ", t.offset,
                              ") extends past the end of the file (", data_size,
                              " data bytes); the file is truncated or corrupt"));
      t.data = bytes_.subspan(data_offset + t.offset, t.bytes);
    }
  }

  // One value of `type` (arrays recursively); `key` names it in errors.
  Value value(ValueType type, int depth, const std::string& key) {
    Value v;
    v.type = type;
    switch (type) {
      case ValueType::u8: v.u = take<uint8_t>("the value", &key); break;
      case ValueType::i8: v.i = take<int8_t>("the value", &key); break;
      case ValueType::u16: v.u = take<uint16_t>("the value", &key); break;
      case ValueType::i16: v.i = take<int16_t>("the value", &key); break;
      case ValueType::u32: v.u = take<uint32_t>("the value", &key); break;
      case ValueType::i32: v.i = take<int32_t>("the value", &key); break;
      case ValueType::u64: v.u = take<uint64_t>("the value", &key); break;
      case ValueType::i64: v.i = take<int64_t>("the value", &key); break;
      case ValueType::f32: v.f = take<float>("the value", &key); break;
      case ValueType::f64: v.f = take<double>("the value", &key); break;
      case ValueType::boolean: v.b = take<uint8_t>("the value", &key) != 0; break;  // as llama.cpp: nonzero is true
      case ValueType::string: v.str = string("the value", &key); break;
      case ValueType::array: {
        uint64_t at = pos_;
        if (depth >= kMaxArrayDepth)
          fail(at, cat("metadata key ", quoted(key), ": arrays nested more than ", kMaxArrayDepth, " deep"));
        uint32_t elem = u32("an array element type", &key);
        if (!is_valid_value_type(elem))
          fail(at, cat("metadata key ", quoted(key), " has unknown array element type ", elem));
        v.elem_type = static_cast<ValueType>(elem);
        uint64_t count = u64("an array length", &key);
        // Bounds the reservation by the bytes left, not by the number in the file.
        if (count > remaining() / min_value_bytes(v.elem_type))
          fail(at + 4, cat("metadata key ", quoted(key), ": array length ", count, " is larger than the file can hold (the file is truncated or corrupt)"));
        v.array.reserve(count);
        for (uint64_t i = 0; i < count; ++i) v.array.push_back(value(v.elem_type, depth + 1, key));
        break;
      }
    }
    return v;
  }

  // A u64 length and that many bytes.
  std::string string(const char* what, const std::string* key) {
    uint64_t at = pos_;
    uint64_t length = u64(what, key);
    if (length > remaining())
      fail(at, cat("length ", length, " of ", what, of_key(key), " runs past the end of the file (", remaining(),
                   " bytes left)"));
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), length);
    pos_ += length;
    return s;
  }

  template <class T>
  T take(const char* what, const std::string* key) {
    if (remaining() < sizeof(T)) fail(pos_, cat("the file ends inside ", what, of_key(key), " (truncated?)"));
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  uint32_t u32(const char* what, const std::string* key) { return take<uint32_t>(what, key); }
  uint64_t u64(const char* what, const std::string* key) { return take<uint64_t>(what, key); }

  static std::string of_key(const std::string* key) { return key ? cat(" of ", quoted(*key)) : std::string(); }
  uint64_t remaining() const { return bytes_.size() - pos_; }

  [[noreturn]] void fail(uint64_t offset, const std::string& what) const {
    user_error(name_, ": at byte ", offset, ": ", what);
  }

  std::span<const uint8_t> bytes_;
  std::string name_;
  uint64_t pos_ = 0;                   // bytes from the start of the file
  std::vector<uint64_t> key_offsets_;  // where each metadata key starts
};

File File::parse(std::span<const uint8_t> bytes, std::string name) { return Reader(bytes, std::move(name)).read(); }

File File::open(const std::string& path) {
  auto mapping = std::make_shared<MappedFile>(MappedFile::open(path));
  File file = parse(mapping->bytes(), path);
  file.mapping_ = mapping;
  return file;
}

const Value* File::find(std::string_view key) const {
  auto it = key_index_.find(key);
  return it == key_index_.end() ? nullptr : &metadata_[it->second].value;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  auto it = tensor_index_.find(name);
  return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

std::string File::architecture() const { return find_string("general.architecture").value_or(""); }

std::optional<uint64_t> File::find_u64(std::string_view key) const {
  const Value* v = find(key);
  return v ? std::optional(v->as_u64(cat(path_, ": metadata key ", key))) : std::nullopt;
}
std::optional<int64_t> File::find_i64(std::string_view key) const {
  const Value* v = find(key);
  return v ? std::optional(v->as_i64(cat(path_, ": metadata key ", key))) : std::nullopt;
}
std::optional<double> File::find_f64(std::string_view key) const {
  const Value* v = find(key);
  return v ? std::optional(v->as_f64(cat(path_, ": metadata key ", key))) : std::nullopt;
}
std::optional<std::string> File::find_string(std::string_view key) const {
  const Value* v = find(key);
  return v ? std::optional(v->as_string(cat(path_, ": metadata key ", key))) : std::nullopt;
}
std::optional<bool> File::find_bool(std::string_view key) const {
  const Value* v = find(key);
  return v ? std::optional(v->as_bool(cat(path_, ": metadata key ", key))) : std::nullopt;
}

namespace {
template <class T>
T required(const std::optional<T>& value, const std::string& path, std::string_view key) {
  if (!value) user_error(path, ": metadata key ", key, " is missing");
  return *value;
}
}  // namespace

uint64_t File::get_u64(std::string_view key) const { return required(find_u64(key), path_, key); }
int64_t File::get_i64(std::string_view key) const { return required(find_i64(key), path_, key); }
double File::get_f64(std::string_view key) const { return required(find_f64(key), path_, key); }
std::string File::get_string(std::string_view key) const { return required(find_string(key), path_, key); }
bool File::get_bool(std::string_view key) const { return required(find_bool(key), path_, key); }

}  // namespace moat::gguf
