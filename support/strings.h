// Small string helpers shared by every layer.
#pragma once

#include <cstdint>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

namespace moat {

// Concatenates anything that has an operator<<.
template <class... Parts>
std::string cat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}

// Joins the elements' textual forms with a separator.
template <class Range>
std::string join(const Range& items, std::string_view separator) {
  std::ostringstream out;
  bool first = true;
  for (const auto& item : items) {
    if (!first) out << separator;
    out << item;
    first = false;
  }
  return out.str();
}

// Quotes a string for an error message or text format: "…" with \" \\ \n \t and
// non-printable bytes as \xNN. UTF-8 bytes >= 0x80 are kept as they are.
std::string quoted(std::string_view text);

// Shortest round-trip decimal form of a float / double (std::to_chars).
std::string format_float(double value);
std::string format_float(float value);

// A byte count in mebibytes with one decimal: "12.3 MiB".
std::string mib(uint64_t bytes);

}  // namespace moat
