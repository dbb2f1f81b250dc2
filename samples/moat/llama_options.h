// llama.cpp's option names on moat's commands. A llama.cpp user's flags work here: each
// name llama.cpp's tools (llama-cli, llama-bench, llama-perplexity) share with a moat
// option is an alias of it; a llama.cpp option moat has no counterpart for gets an
// error that says so and what comes closest, instead of "unknown option".
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace moat::cli {

// The moat option `name` stands for on `command`, which offers the options `offered`
// ("-c" -> "--ctx" when "--ctx" is offered); nullopt when it is no alias there.
std::optional<std::string_view> llama_alias_target(std::string_view name, std::string_view command,
                                                   const std::vector<std::string_view>& offered);

// The aliases of moat option `option` on `command` ("--ctx" -> {"-c", "--ctx-size"}).
std::vector<std::string_view> llama_aliases_of(std::string_view option, std::string_view command);

// For a llama.cpp option moat lacks ("-ngl"): why, and what to use instead; nullopt when
// `name` is not one of llama.cpp's options that moat knows to lack.
std::optional<std::string_view> llama_option_missing(std::string_view name);

// The offered option (or alias) nearest `name` by edit distance, when near enough to be
// a likely typo ("--temperture" -> "--temp"); "" when none is.
std::string nearest_option(std::string_view name, std::string_view command, const std::vector<std::string_view>& offered);

}  // namespace moat::cli
