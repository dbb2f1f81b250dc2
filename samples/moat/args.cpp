#include "samples/moat/args.h"

#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <filesystem>
#include <cmath>
#include <fstream>
#include <sstream>

#include "samples/moat/llama_options.h"
#include "support/error.h"

namespace moat::cli {

namespace {
const OptionSpec* find_option(const CommandSpec& spec, std::string_view name) {
  for (const OptionSpec& o : spec.options)
    if (o.name == name) return &o;
  return nullptr;
}

std::string see_help(const CommandSpec& spec) { return cat(" (see: moat ", spec.name, " --help)"); }

std::vector<std::string_view> option_names(const CommandSpec& spec) {
  std::vector<std::string_view> names;
  for (const OptionSpec& o : spec.options) names.push_back(o.name);
  return names;
}

// The spec of option `name` (or of the moat option a llama.cpp alias stands for); a
// UserError that says why otherwise: a llama.cpp option moat lacks, a likely typo, or
// an unknown name.
const OptionSpec& resolve_option(const CommandSpec& spec, std::string_view name) {
  if (const OptionSpec* option = find_option(spec, name)) return *option;
  const std::vector<std::string_view> offered = option_names(spec);
  if (std::optional<std::string_view> target = llama_alias_target(name, spec.name, offered))
    return *find_option(spec, *target);
  if (std::optional<std::string_view> why = llama_option_missing(name))
    user_error("moat ", spec.name, ": ", name, " (a llama.cpp option) is not supported: ", *why);
  const std::string nearest = nearest_option(name, spec.name, offered);
  if (!nearest.empty()) user_error("moat ", spec.name, ": unknown option ", name, "; did you mean ", nearest, "?", see_help(spec));
  user_error("moat ", spec.name, ": unknown option ", name, see_help(spec));
}
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
      const OptionSpec* option = &resolve_option(spec, name);
      const std::string_view typed = name;
      name = option->name;  // values and flags are kept under moat's name, whichever alias gave them
      if (option->value_name.empty()) {
        if (has_inline) user_error("moat ", spec.name, ": option ", typed, " takes no value", see_help(spec));
        parsed.flags.insert(std::string(name));
        continue;
      }
      if (!has_inline) {
        if (i + 1 >= args.size())
          user_error("moat ", spec.name, ": option ", typed, " needs a value (", option->value_name, ")", see_help(spec));
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
    const std::vector<std::string_view> aliases = llama_aliases_of(o.name, spec.name);
    const std::string also = aliases.empty() ? "" : cat(" (also ", join(aliases, ", "), ")");
    if (left.size() < 24) left.resize(24, ' ');
    else left += "  ";
    out += cat(left, o.help, also, "\n");
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

void check_writable(std::string_view option, const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (path.empty()) user_error(option, ": give a file name");
  if (fs::is_directory(path, ec)) user_error(option, " ", path, ": is a folder; give a file name");
  if (fs::exists(path, ec)) {
    if (::access(path.c_str(), W_OK) != 0) user_error(option, " ", path, ": the file exists and cannot be written");
    return;
  }
  const fs::path parent = fs::path(path).has_parent_path() ? fs::path(path).parent_path() : fs::path(".");
  if (!fs::is_directory(parent, ec)) user_error(option, " ", path, ": the folder ", parent.string(), " does not exist");
  if (::access(parent.c_str(), W_OK) != 0) user_error(option, " ", path, ": the folder ", parent.string(), " is not writable");
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
