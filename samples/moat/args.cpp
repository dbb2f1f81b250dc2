#include "samples/moat/args.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <fstream>
#include <sstream>

#include "support/error.h"

namespace moat::cli {

namespace {
const OptionSpec* find_option(const CommandSpec& spec, std::string_view name) {
  for (const OptionSpec& o : spec.options)
    if (o.name == name) return &o;
  return nullptr;
}

std::string see_help(const CommandSpec& spec) { return cat(" (see: moat ", spec.name, " --help)"); }
}  // namespace

ParsedArgs parse_args(const CommandSpec& spec, std::span<char* const> args) {
  ParsedArgs parsed;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string_view arg = args[i];
    if (arg == "--help" || arg == "-h") {
      parsed.help = true;
      return parsed;
    }
    if (arg.size() > 1 && arg[0] == '-' && !(arg.size() > 1 && std::isdigit(static_cast<unsigned char>(arg[1])))) {
      std::string_view name = arg, inline_value;
      bool has_inline = false;
      if (size_t eq = arg.find('='); eq != std::string_view::npos && arg.starts_with("--")) {
        name = arg.substr(0, eq);
        inline_value = arg.substr(eq + 1);
        has_inline = true;
      }
      const OptionSpec* option = find_option(spec, name);
      if (!option) user_error("moat ", spec.name, ": unknown option ", name, see_help(spec));
      if (option->value_name.empty()) {
        if (has_inline) user_error("moat ", spec.name, ": option ", name, " takes no value", see_help(spec));
        parsed.flags.insert(std::string(name));
        continue;
      }
      if (!has_inline) {
        if (i + 1 >= args.size())
          user_error("moat ", spec.name, ": option ", name, " needs a value (", option->value_name, ")", see_help(spec));
        inline_value = args[++i];
      }
      parsed.values[std::string(name)] = std::string(inline_value);
      continue;
    }
    parsed.positional.emplace_back(arg);
  }
  if (parsed.positional.size() < spec.min_positional)
    user_error("moat ", spec.name, ": missing argument; usage: moat ", spec.name, " ", spec.usage, see_help(spec));
  if (parsed.positional.size() > spec.max_positional)
    user_error("moat ", spec.name, ": unexpected argument '", parsed.positional[spec.max_positional], "'", see_help(spec));
  return parsed;
}

bool ParsedArgs::has(std::string_view option) const { return flags.count(option) || values.count(option); }

const std::string& ParsedArgs::value(std::string_view option) const {
  auto it = values.find(option);
  if (it == values.end()) user_error("option ", option, " is required");
  return it->second;
}

std::string ParsedArgs::value_or(std::string_view option, std::string fallback) const {
  auto it = values.find(option);
  return it == values.end() ? fallback : it->second;
}

int64_t ParsedArgs::integer(std::string_view option, int64_t fallback, int64_t min, int64_t max) const {
  auto it = values.find(option);
  if (it == values.end()) return fallback;
  const std::string& text = it->second;
  int64_t v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || v < min || v > max)
    user_error("option ", option, " must be an integer in [", min, ", ", max, "], got '", text, "'");
  return v;
}

double ParsedArgs::number(std::string_view option, double fallback, double min, double max) const {
  auto it = values.find(option);
  if (it == values.end()) return fallback;
  const std::string& text = it->second;
  double v = 0;
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (ec != std::errc() || end != text.data() + text.size() || !std::isfinite(v) || v < min || v > max)
    user_error("option ", option, " must be a number in [", min, ", ", max, "], got '", text, "'");
  return v;
}

std::string help_text(const CommandSpec& spec) {
  std::string out = cat("usage: moat ", spec.name, " ", spec.usage, "\n\n", spec.summary, "\n");
  if (!spec.details.empty()) out += cat("\n", spec.details, "\n");
  if (!spec.options.empty()) out += "\noptions:\n";
  for (const OptionSpec& o : spec.options) {
    std::string left = cat("  ", o.name, o.value_name.empty() ? "" : " ", o.value_name);
    if (left.size() < 24) left.resize(24, ' ');
    else left += "  ";
    out += cat(left, o.help, "\n");
  }
  out += cat("  --help", std::string(16, ' '), "show this help\n");
  return out;
}

std::string read_option_file(std::string_view option, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) user_error(option, " ", path, ": cannot be read; check the path and its permissions");
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

std::optional<std::vector<int64_t>> parse_integer_list(const std::string& text, int64_t min, int64_t max, std::string& bad) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    int64_t value = 0;
    const auto [rest, error] = std::from_chars(item.data(), item.data() + item.size(), value);
    if (item.empty() || error != std::errc() || rest != item.data() + item.size() || value < min || value > max) {
      bad = item;
      return std::nullopt;
    }
    out.push_back(value);
    start = end + 1;
  }
  return out;
}

}  // namespace moat::cli
