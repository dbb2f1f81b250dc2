// GGUF reader. Layout (little-endian): "GGUF", u32 version, u64 tensor count, u64
// key-value count, the key-values, the tensor infos, padding to `general.alignment`,
// then the data section that tensor offsets are relative to.
#include <cstring>

#include "frontend/gguf.h"
#include "support/checked.h"
#include "support/error.h"
#include "support/mapped_file.h"

namespace moat::gguf {

namespace {
constexpr int kMaxArrayDepth = 8;     // arrays of arrays of ...
constexpr uint32_t kMaxDims = 4;      // GGML_MAX_DIMS
constexpr uint64_t kDefaultAlignment = 32;

// Smallest number of bytes one value of `type` takes in the file.
uint64_t min_value_bytes(ValueType type) {
  switch (type) {
    case ValueType::u8: case ValueType::i8: case ValueType::boolean: return 1;
    case ValueType::u16: case ValueType::i16: return 2;
    case ValueType::u32: case ValueType::i32: case ValueType::f32: return 4;
    case ValueType::u64: case ValueType::i64: case ValueType::f64: case ValueType::string: return 8;
    case ValueType::array: return 12;
  }
  return 1;
}
}  // namespace

class Reader {
 public:
  Reader(std::span<const uint8_t> bytes, std::string name) : bytes_(bytes), name_(std::move(name)) {}

  File read() {
    File file;
    file.path_ = name_;
    if (bytes_.size() < 4 || std::memcmp(bytes_.data(), "GGUF", 4) != 0)
      fail(0, "not a GGUF file (the first 4 bytes are not 'GGUF')");
    pos_ = 4;
    uint32_t version = u32("the version");
    if (version == 1) fail(4, "GGUF version 1 is too old; re-convert the model with a current llama.cpp");
    if (version > 0xffff && (version & 0xffff) == 0)
      fail(4, "this GGUF file is big-endian; moatless reads little-endian files only");
    if (version != 2 && version != 3) fail(4, cat("unsupported GGUF version ", version, " (supported: 2 and 3)"));
    file.version_ = version;
    uint64_t n_tensors = u64("the tensor count");
    uint64_t n_kv = u64("the metadata count");
    // Each key-value takes at least 8 (key length) + 4 (type) + 1 bytes; each tensor info
    // at least 8 + 4 + 8 + 4 + 8.
    if (n_kv > remaining() / 13) fail(16, cat("metadata count ", n_kv, " is larger than the file can hold"));
    file.metadata_.reserve(n_kv);
    for (uint64_t k = 0; k < n_kv; ++k) {
      uint64_t at = pos_;
      KeyValue kv;
      kv.key = string("a metadata key");
      for (const KeyValue& other : file.metadata_)
        if (other.key == kv.key) fail(at, cat("metadata key ", quoted(kv.key), " appears twice"));
      uint32_t type = u32("a metadata type");
      kv.value = value(type, 0, kv.key);
      file.metadata_.push_back(std::move(kv));
    }
    if (const Value* align = file.find("general.alignment")) {
      if (align->type != ValueType::u32 || align->u == 0 || (align->u & (align->u - 1)) != 0)
        fail(0, "metadata key general.alignment must be a u32 power of two");
      file.alignment_ = align->u;
    } else {
      file.alignment_ = kDefaultAlignment;
    }
    if (n_tensors > remaining() / 32) fail(8, cat("tensor count ", n_tensors, " is larger than the file can hold"));
    file.tensors_.reserve(n_tensors);
    for (uint64_t t = 0; t < n_tensors; ++t) file.tensors_.push_back(tensor_info(file));
    uint64_t data_offset = 0;
    if (!checked_align_up(pos_, file.alignment_, &data_offset))
      fail(pos_, "the data section's offset overflows");
    // Writers omit the final padding when there is no tensor data (e.g. vocabulary-only files).
    if (data_offset > bytes_.size()) data_offset = bytes_.size();
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
    return file;
  }

 private:
  TensorInfo tensor_info(const File& file) {
    uint64_t at = pos_;
    TensorInfo t;
    t.name = string("a tensor name");
    for (const TensorInfo& other : file.tensors_)
      if (other.name == t.name) fail(at, cat("tensor ", quoted(t.name), " appears twice"));
    uint32_t n_dims = u32("a tensor's dimension count");
    if (n_dims > kMaxDims) fail(at, cat("tensor ", quoted(t.name), " has ", n_dims, " dimensions (at most 4)"));
    uint64_t elems = 1;
    for (uint32_t d = 0; d < n_dims; ++d) {
      uint64_t dim = u64("a tensor dimension");
      if (dim > static_cast<uint64_t>(INT64_MAX) || !checked_mul(elems, dim, &elems) ||
          elems > static_cast<uint64_t>(INT64_MAX))
        fail(at, cat("tensor ", quoted(t.name), " has too many elements (dimension ", d, " = ", dim, ")"));
      t.dims.push_back(dim);
    }
    uint32_t type_id = u32("a tensor type");
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
      fail(at, cat("tensor ", quoted(t.name), " is too large"));
    t.offset = u64("a tensor offset");
    if (t.offset % file.alignment_ != 0)
      fail(pos_ - 8, cat("tensor ", quoted(t.name), " data offset ", t.offset, " is not a multiple of the alignment ",
                         file.alignment_));
    return t;
  }

  Value value(uint32_t type_id, int depth, const std::string& key) {
    uint64_t at = pos_;
    if (type_id > static_cast<uint32_t>(ValueType::f64))
      fail(at - 4, cat("metadata key ", quoted(key), " has unknown value type ", type_id));
    Value v;
    v.type = static_cast<ValueType>(type_id);
    switch (v.type) {
      case ValueType::u8: v.u = take<uint8_t>(key); break;
      case ValueType::i8: v.i = take<int8_t>(key); break;
      case ValueType::u16: v.u = take<uint16_t>(key); break;
      case ValueType::i16: v.i = take<int16_t>(key); break;
      case ValueType::u32: v.u = take<uint32_t>(key); break;
      case ValueType::i32: v.i = take<int32_t>(key); break;
      case ValueType::u64: v.u = take<uint64_t>(key); break;
      case ValueType::i64: v.i = take<int64_t>(key); break;
      case ValueType::f32: v.f = take<float>(key); break;
      case ValueType::f64: v.f = take<double>(key); break;
      case ValueType::boolean: {
        uint8_t b = take<uint8_t>(key);
        if (b > 1) fail(at, cat("metadata key ", quoted(key), ": bool value ", int(b), " is not 0 or 1"));
        v.b = b != 0;
        break;
      }
      case ValueType::string: v.str = string(cat("the value of ", quoted(key))); break;
      case ValueType::array: {
        if (depth >= kMaxArrayDepth) fail(at, cat("metadata key ", quoted(key), ": arrays nested too deeply"));
        uint32_t elem = u32("an array element type");
        if (elem > static_cast<uint32_t>(ValueType::f64))
          fail(at, cat("metadata key ", quoted(key), " has unknown array element type ", elem));
        v.elem_type = static_cast<ValueType>(elem);
        uint64_t count = u64("an array length");
        if (count > remaining() / min_value_bytes(v.elem_type))
          fail(at, cat("metadata key ", quoted(key), ": array length ", count, " is larger than the file can hold"));
        v.array.reserve(count);
        for (uint64_t i = 0; i < count; ++i) v.array.push_back(value(elem, depth + 1, key));
        break;
      }
    }
    return v;
  }

  std::string string(const std::string& what) {
    uint64_t at = pos_;
    uint64_t length = u64(what.c_str());
    if (length > remaining()) fail(at, cat("length ", length, " of ", what, " runs past the end of the file"));
    std::string s(reinterpret_cast<const char*>(bytes_.data() + pos_), length);
    pos_ += length;
    return s;
  }

  template <class T>
  T take(const std::string& what) {
    if (remaining() < sizeof(T)) fail(pos_, cat("the file ends inside ", what, " (truncated?)"));
    T value;
    std::memcpy(&value, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return value;
  }
  uint32_t u32(const char* what) { return take<uint32_t>(what); }
  uint64_t u64(const char* what) { return take<uint64_t>(what); }

  uint64_t remaining() const { return bytes_.size() - pos_; }

  [[noreturn]] void fail(uint64_t offset, const std::string& what) const {
    user_error(name_, ": at byte ", offset, ": ", what);
  }

  std::span<const uint8_t> bytes_;
  std::string name_;
  uint64_t pos_ = 0;
};

File File::parse(std::span<const uint8_t> bytes, std::string name) { return Reader(bytes, std::move(name)).read(); }

File File::open(const std::string& path) {
  auto mapping = std::make_shared<MappedFile>(MappedFile::open(path));
  File file = parse(mapping->bytes(), path);
  file.mapping_ = mapping;
  return file;
}

const Value* File::find(std::string_view key) const {
  for (const KeyValue& kv : metadata_)
    if (kv.key == key) return &kv.value;
  return nullptr;
}

const TensorInfo* File::find_tensor(std::string_view name) const {
  for (const TensorInfo& t : tensors_)
    if (t.name == name) return &t;
  return nullptr;
}

std::string File::architecture() const { return find_string("general.architecture").value_or(""); }

namespace {
[[noreturn]] void wrong_type(const std::string& path, std::string_view key, const Value& v, const char* expected) {
  user_error(path, ": metadata key ", key, " is ", value_type_name(v.type), ", expected ", expected);
}
bool is_unsigned(ValueType t) {
  return t == ValueType::u8 || t == ValueType::u16 || t == ValueType::u32 || t == ValueType::u64;
}
bool is_signed(ValueType t) {
  return t == ValueType::i8 || t == ValueType::i16 || t == ValueType::i32 || t == ValueType::i64;
}
}  // namespace

std::optional<uint64_t> File::find_u64(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (is_unsigned(v->type)) return v->u;
  if (is_signed(v->type) && v->i >= 0) return static_cast<uint64_t>(v->i);
  wrong_type(path_, key, *v, "a non-negative integer");
}

std::optional<double> File::find_f64(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->type == ValueType::f32 || v->type == ValueType::f64) return v->f;
  if (is_unsigned(v->type)) return static_cast<double>(v->u);
  if (is_signed(v->type)) return static_cast<double>(v->i);
  wrong_type(path_, key, *v, "a number");
}

std::optional<std::string> File::find_string(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != ValueType::string) wrong_type(path_, key, *v, "a string");
  return v->str;
}

std::optional<bool> File::find_bool(std::string_view key) const {
  const Value* v = find(key);
  if (!v) return std::nullopt;
  if (v->type != ValueType::boolean) wrong_type(path_, key, *v, "a bool");
  return v->b;
}

namespace {
template <class T>
T required(const std::optional<T>& value, const std::string& path, std::string_view key) {
  if (!value) user_error(path, ": metadata key ", key, " is missing");
  return *value;
}
}  // namespace

uint64_t File::get_u64(std::string_view key) const { return required(find_u64(key), path_, key); }
double File::get_f64(std::string_view key) const { return required(find_f64(key), path_, key); }
std::string File::get_string(std::string_view key) const { return required(find_string(key), path_, key); }
bool File::get_bool(std::string_view key) const { return required(find_bool(key), path_, key); }

}  // namespace moat::gguf
