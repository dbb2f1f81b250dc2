// Command-line parsing for the moat subcommands. Every option a command accepts is
// listed once in its CommandSpec; the spec also renders `--help`.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace moat::cli {

struct OptionSpec {
  std::string_view name;        // "--json", "-m"
  std::string_view value_name;  // "" for a flag, else e.g. "MODEL"
  std::string_view help;
};

struct CommandSpec {
  std::string_view name;     // "inspect"
  std::string_view usage;    // "FILE|DIR [--json]"
  std::string_view summary;  // one line
  std::vector<OptionSpec> options;
  size_t min_positional = 0;
  size_t max_positional = 0;
  std::string_view details;  // more paragraphs for --help ("" for none)
};

class ParsedArgs {
 public:
  bool help = false;
  std::vector<std::string> positional;

  bool has(std::string_view option) const;
  // The option's value; UserError when absent.
  const std::string& value(std::string_view option) const;
  std::string value_or(std::string_view option, std::string fallback) const;
  // Integer option in [min, max]; UserError naming the option otherwise.
  int64_t integer(std::string_view option, int64_t fallback, int64_t min, int64_t max) const;
  double number(std::string_view option, double fallback, double min, double max) const;

  std::map<std::string, std::string, std::less<>> values;
  std::set<std::string, std::less<>> flags;
};

// Parses argv (after the subcommand name). Throws UserError naming the unknown or
// malformed option and pointing at `moat NAME --help`.
ParsedArgs parse_args(const CommandSpec& spec, std::span<char* const> args);

// "3,0,17": integers in [min, max] separated by commas. nullopt when an item is empty,
// not a number or out of range; that item goes to `bad` (for the caller's message).
std::optional<std::vector<int64_t>> parse_integer_list(const std::string& text, int64_t min, int64_t max, std::string& bad);

std::string help_text(const CommandSpec& spec);

// The bytes of FILE, the value of `option` (e.g. "-f"); UserError naming both when it
// cannot be read.
std::string read_option_file(std::string_view option, const std::string& path);

// UserError naming `option` when `path` could not be written: its folder is missing or
// not writable, or it is a folder or a read-only file. Checked before any work; creates
// nothing.
void check_writable(std::string_view option, const std::string& path);

}  // namespace moat::cli
