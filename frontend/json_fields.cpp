#include "frontend/json_fields.h"

#include <cmath>

#include "support/error.h"
#include "support/strings.h"

namespace moat::hf {

using nlohmann::json;

namespace {

// nlohmann's messages start with "[json.exception.parse_error.101] "; keep the rest.
std::string strip_exception_id(const std::string& what) {
  size_t close = what.find("] ");
  return close == std::string::npos ? what : what.substr(close + 2);
}

}  // namespace

std::string brief(const json& value) {
  std::string text = value.dump(-1, ' ', false, json::error_handler_t::replace);
  if (text.size() > 60) text = text.substr(0, 57) + "...";
  return text;
}

json parse_json_text(std::string_view text, const std::string& path) {
  try {
    return json::parse(text.begin(), text.end());
  } catch (const json::exception& e) {
    user_error(path, ": not valid JSON: ", strip_exception_id(e.what()));
  }
}


int64_t Fields::integer(const char* key, int64_t fallback, Min min) const {
  if (!has_key(key)) return fallback;
  return to_integer(key, object_[key], min);
}

std::optional<int64_t> Fields::nullable_integer(const char* key, std::optional<int64_t> fallback, Min min) const {
  if (!has_key(key)) return fallback;
  if (object_[key].is_null()) return std::nullopt;
  return to_integer(key, object_[key], min);
}

double Fields::positive_number(const char* key, double fallback) const {
  if (!has_key(key)) return fallback;
  const json& v = object_[key];
  if (!v.is_number() || !(v.get<double>() > 0) || !std::isfinite(v.get<double>())) fail(key, "a positive number", v);
  return v.get<double>();
}

bool Fields::boolean(const char* key, bool fallback) const {
  if (!has_key(key)) return fallback;
  if (!object_[key].is_boolean()) fail(key, "true or false", object_[key]);
  return object_[key].get<bool>();
}

std::string Fields::string(const char* key, std::string fallback) const {
  if (!has_key(key)) return fallback;
  if (!object_[key].is_string()) fail(key, "a string", object_[key]);
  return object_[key].get<std::string>();
}

std::string Fields::choice(const char* key, std::string fallback, std::initializer_list<std::string_view> allowed) const {
  std::string value = string(key, std::move(fallback));
  for (std::string_view a : allowed)
    if (value == a) return value;
  user_error(path_, ": field \"", prefix_, key, "\" is ", quoted(value), "; moatless supports ", join(allowed, ", "));
}

std::vector<std::string> Fields::strings(const char* key) const {
  std::vector<std::string> out;
  if (!present(key)) return out;
  const json& v = object_[key];
  if (!v.is_array()) fail(key, "an array of strings", v);
  for (const json& e : v) {
    if (!e.is_string()) fail(key, "an array of strings", v);
    out.push_back(e.get<std::string>());
  }
  return out;
}

std::vector<int64_t> Fields::integers(const char* key, Min min, size_t most) const {
  std::vector<int64_t> out;
  if (!present(key)) return out;
  const json& v = object_[key];
  if (!v.is_array() || v.size() > most) fail(key, cat("an array of at most ", most, " integers").c_str(), v);
  for (const json& e : v) out.push_back(to_integer(key, e, min));
  return out;
}

void Fields::fail(const char* key, const char* expected, const json& got) const {
  user_error(path_, ": field \"", prefix_, key, "\" must be ", expected, ", got ", brief(got));
}

int64_t Fields::to_integer(const char* key, const json& v, Min min) const {
  const char* expected = min == Min::One ? "a positive integer" : "a non-negative integer";
  int64_t value = -1;
  if (v.is_number_unsigned()) {
    value = v.get<uint64_t>() > static_cast<uint64_t>(kMaxSize) ? kMaxSize + 1 : v.get<int64_t>();
  } else if (v.is_number_integer()) {
    value = v.get<int64_t>();
  } else if (v.is_number_float()) {  // 4096.0: integral floats are accepted
    double d = v.get<double>();
    if (!(std::floor(d) == d)) fail(key, expected, v);
    value = std::fabs(d) > kMaxSize ? (d < 0 ? -1 : kMaxSize + 1) : static_cast<int64_t>(d);
  } else {
    fail(key, expected, v);
  }
  if (value < (min == Min::One ? 1 : 0)) fail(key, expected, v);
  if (value > kMaxSize) user_error(path_, ": field \"", prefix_, key, "\" is ", brief(v), ", over the limit of ", kMaxSize);
  return value;
}

}  // namespace moat::hf
