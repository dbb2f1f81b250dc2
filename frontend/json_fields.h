// Typed, checked reading of a JSON object's fields (a Hugging Face config.json): each
// wrong type or out-of-range value is a UserError naming the file and the field.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moat::hf {

constexpr uint64_t kMaxJsonBytes = 64ull << 20;  // a config.json is a few KiB
constexpr int64_t kMaxSize = INT32_MAX;           // any size or count in a config

// The value as JSON text, cut to 60 characters: what an error message quotes.
std::string brief(const nlohmann::json& value);
// Parses JSON text; UserError "<path>: not valid JSON: ..." when it is not.
nlohmann::json parse_json_text(std::string_view text, const std::string& path);

enum class Min { Zero, One };

// Typed access to one JSON object's fields; `prefix` names the object in messages
// ("rope_scaling."). Absent fields give the caller's fallback.
class Fields {
 public:
  Fields(const nlohmann::json& object, const std::string& path, std::string prefix)
      : object_(object), path_(path), prefix_(std::move(prefix)) {}

  bool present(const char* key) const { return object_.contains(key) && !object_[key].is_null(); }
  bool has_key(const char* key) const { return object_.contains(key); }

  int64_t integer(const char* key, int64_t fallback, Min min) const;
  // A field that may be null (HF's None): nullopt when null, `fallback` when absent.
  std::optional<int64_t> nullable_integer(const char* key, std::optional<int64_t> fallback, Min min) const;
  double positive_number(const char* key, double fallback) const;
  bool boolean(const char* key, bool fallback) const;
  std::string string(const char* key, std::string fallback) const;
  // A string that must be one of `allowed`.
  std::string choice(const char* key, std::string fallback, std::initializer_list<std::string_view> allowed) const;
  std::vector<std::string> strings(const char* key) const;
  // An array of at most `most` integers (empty when absent or null).
  std::vector<int64_t> integers(const char* key, Min min, size_t most = 8) const;

  [[noreturn]] void fail(const char* key, const char* expected, const nlohmann::json& got) const;

 private:
  int64_t to_integer(const char* key, const nlohmann::json& v, Min min) const;

  const nlohmann::json& object_;
  const std::string& path_;
  std::string prefix_;
};

}  // namespace moat::hf
