#include "frontend/gguf_writer.h"

#include <cerrno>
#include <cstring>
#include <fstream>

#include "support/error.h"

namespace moat::gguf {

namespace {

template <class T>
void put(std::vector<uint8_t>& out, T value) {
  uint8_t raw[sizeof(T)];
  std::memcpy(raw, &value, sizeof(T));
  out.insert(out.end(), raw, raw + sizeof(T));
}

void put_string(std::vector<uint8_t>& out, const std::string& s) {
  put<uint64_t>(out, s.size());
  out.insert(out.end(), s.begin(), s.end());
}

// The value without its type tag (arrays carry their element type and count).
void put_value(std::vector<uint8_t>& out, const Value& v) {
  switch (v.type) {
    case ValueType::u8: put<uint8_t>(out, static_cast<uint8_t>(v.u)); break;
    case ValueType::i8: put<int8_t>(out, static_cast<int8_t>(v.i)); break;
    case ValueType::u16: put<uint16_t>(out, static_cast<uint16_t>(v.u)); break;
    case ValueType::i16: put<int16_t>(out, static_cast<int16_t>(v.i)); break;
    case ValueType::u32: put<uint32_t>(out, static_cast<uint32_t>(v.u)); break;
    case ValueType::i32: put<int32_t>(out, static_cast<int32_t>(v.i)); break;
    case ValueType::u64: put<uint64_t>(out, v.u); break;
    case ValueType::i64: put<int64_t>(out, v.i); break;
    case ValueType::f32: put<float>(out, static_cast<float>(v.f)); break;
    case ValueType::f64: put<double>(out, v.f); break;
    case ValueType::boolean: put<uint8_t>(out, v.b ? 1 : 0); break;
    case ValueType::string: put_string(out, v.str); break;
    case ValueType::array:
      put<uint32_t>(out, static_cast<uint32_t>(v.elem_type));
      put<uint64_t>(out, v.array.size());
      for (const Value& item : v.array) {
        MOAT_INTERNAL_CHECK(item.type == v.elem_type, "array element of type ", value_type_name(item.type),
                            " in an array of ", value_type_name(v.elem_type));
        put_value(out, item);
      }
      break;
  }
}

void pad_to(std::vector<uint8_t>& out, uint64_t alignment) {
  while (out.size() % alignment != 0) out.push_back(0);
}

}  // namespace

void Writer::set(std::string key, Value value) {
  for (KeyValue& kv : metadata_)
    if (kv.key == key) {
      kv.value = std::move(value);
      return;
    }
  metadata_.push_back({std::move(key), std::move(value)});
}

void Writer::set_u8(std::string key, uint8_t v) { set(std::move(key), Value{.type = ValueType::u8, .u = v}); }
void Writer::set_i8(std::string key, int8_t v) { set(std::move(key), Value{.type = ValueType::i8, .i = v}); }
void Writer::set_u16(std::string key, uint16_t v) { set(std::move(key), Value{.type = ValueType::u16, .u = v}); }
void Writer::set_i16(std::string key, int16_t v) { set(std::move(key), Value{.type = ValueType::i16, .i = v}); }
void Writer::set_u32(std::string key, uint32_t v) { set(std::move(key), Value{.type = ValueType::u32, .u = v}); }
void Writer::set_i32(std::string key, int32_t v) { set(std::move(key), Value{.type = ValueType::i32, .i = v}); }
void Writer::set_u64(std::string key, uint64_t v) { set(std::move(key), Value{.type = ValueType::u64, .u = v}); }
void Writer::set_i64(std::string key, int64_t v) { set(std::move(key), Value{.type = ValueType::i64, .i = v}); }
void Writer::set_f32(std::string key, float v) { set(std::move(key), Value{.type = ValueType::f32, .f = v}); }
void Writer::set_f64(std::string key, double v) { set(std::move(key), Value{.type = ValueType::f64, .f = v}); }
void Writer::set_bool(std::string key, bool v) { set(std::move(key), Value{.type = ValueType::boolean, .b = v}); }
void Writer::set_string(std::string key, std::string v) {
  set(std::move(key), Value{.type = ValueType::string, .str = std::move(v)});
}
void Writer::set_string_array(std::string key, const std::vector<std::string>& items) {
  Value v{.type = ValueType::array, .elem_type = ValueType::string};
  for (const std::string& s : items) v.array.push_back(Value{.type = ValueType::string, .str = s});
  set(std::move(key), std::move(v));
}

void Writer::set_i32_array(std::string key, const std::vector<int32_t>& items) {
  std::vector<Value> values;
  for (int32_t x : items) values.push_back(Value{.type = ValueType::i32, .i = x});
  set_array(std::move(key), ValueType::i32, std::move(values));
}
void Writer::set_f32_array(std::string key, const std::vector<float>& items) {
  std::vector<Value> values;
  for (float x : items) values.push_back(Value{.type = ValueType::f32, .f = x});
  set_array(std::move(key), ValueType::f32, std::move(values));
}
void Writer::set_array(std::string key, ValueType elem, std::vector<Value> items) {
  for (const Value& item : items)
    MOAT_INTERNAL_CHECK(item.type == elem, "array element of type ", value_type_name(item.type), " in an array of ",
                        value_type_name(elem));
  set(std::move(key), Value{.type = ValueType::array, .elem_type = elem, .array = std::move(items)});
}

void Writer::set_alignment(uint64_t alignment) {
  MOAT_INTERNAL_CHECK(alignment > 0 && (alignment & (alignment - 1)) == 0 && alignment <= (uint64_t{1} << 31),
                      "alignment must be a power of two");
  alignment_ = alignment;
  set_u32("general.alignment", static_cast<uint32_t>(alignment));
}

void Writer::add_tensor(std::string name, GgmlType type, std::vector<uint64_t> dims, std::span<const uint8_t> data) {
  tensors_.push_back({std::move(name), type, std::move(dims), std::vector<uint8_t>(data.begin(), data.end())});
}

std::vector<uint8_t> Writer::to_bytes() const {
  std::vector<uint8_t> out{'G', 'G', 'U', 'F'};
  put<uint32_t>(out, 3);
  put<uint64_t>(out, tensors_.size());
  put<uint64_t>(out, metadata_.size());
  for (const KeyValue& kv : metadata_) {
    put_string(out, kv.key);
    put<uint32_t>(out, static_cast<uint32_t>(kv.value.type));
    put_value(out, kv.value);
  }
  uint64_t offset = 0;
  for (const Tensor& t : tensors_) {
    put_string(out, t.name);
    put<uint32_t>(out, static_cast<uint32_t>(t.dims.size()));
    for (uint64_t d : t.dims) put<uint64_t>(out, d);
    put<uint32_t>(out, static_cast<uint32_t>(t.type));
    put<uint64_t>(out, offset);
    offset += (t.data.size() + alignment_ - 1) / alignment_ * alignment_;
  }
  pad_to(out, alignment_);
  for (const Tensor& t : tensors_) {
    out.insert(out.end(), t.data.begin(), t.data.end());
    pad_to(out, alignment_);
  }
  return out;
}

void Writer::write(const std::string& path) const {
  std::vector<uint8_t> bytes = to_bytes();
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  if (!out) user_error(path, ": cannot create the GGUF file: ", std::strerror(errno));
  out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  out.close();
  if (!out) user_error(path, ": cannot write the GGUF file: ", std::strerror(errno));
}

}  // namespace moat::gguf
