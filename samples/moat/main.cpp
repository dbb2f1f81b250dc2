// moat: the moatless command line. `moat --help` lists the commands.
#include <cstdio>
#include <exception>
#include <iostream>
#include <new>
#include <string>
#include <string_view>
#include <vector>

#include "samples/moat/commands.h"
#include "samples/moat/llama_options.h"
#include "support/error.h"

namespace {

std::vector<const moat::cli::Command*> all_commands() {
  return {&moat::cli::devices_command(), &moat::cli::inspect_command(), &moat::cli::emit_command(),
          &moat::cli::run_command(),     &moat::cli::tokenize_command(), &moat::cli::bench_command(),
          &moat::cli::perplexity_command(), &moat::cli::serve_command()};
}

void print_usage(std::FILE* out) {
  std::fprintf(out, "moat %s: one model file, any GPU\n\nusage: moat COMMAND [options]\n\ncommands:\n", MOAT_VERSION);
  for (const auto* c : all_commands())
    std::fprintf(out, "  %-10s %.*s\n", std::string(c->spec.name).c_str(), static_cast<int>(c->spec.summary.size()),
                 c->spec.summary.data());
  std::fprintf(out,
               "\n`moat help COMMAND` (or `moat COMMAND --help`) describes a command; `moat --list-devices` lists the "
               "devices.\nllama.cpp's option names work as aliases (-c, -b, -s, -ngl is explained, ...).\n"
               "Exit codes: 0 ok, 2 user error, 1 internal error.\n");
}

const moat::cli::Command* find_command(std::string_view name) {
  for (const auto* command : all_commands())
    if (command->spec.name == name) return command;
  return nullptr;
}

int dispatch(int argc, char** argv) {
  if (argc < 2) {
    print_usage(stderr);
    return 2;
  }
  std::string_view name = argv[1];
  // llama.cpp's --list-devices, wherever it is given: the device list, then exit
  for (int i = 1; i < argc; ++i)
    if (std::string_view(argv[i]) == "--list-devices") {
      char devices[] = "devices";
      char* list_argv[] = {argv[0], devices};
      return dispatch(2, list_argv);
    }
  if (name == "help" && argc >= 3) {
    const moat::cli::Command* command = find_command(argv[2]);
    if (!command) moat::user_error("unknown command '", argv[2], "' (see: moat --help)");
    std::cout << moat::cli::help_text(command->spec);
    return 0;
  }
  if (name == "--help" || name == "-h" || name == "help") {
    print_usage(stdout);
    return 0;
  }
  if (name == "--version") {
    std::printf("moat %s\n", MOAT_VERSION);
    return 0;
  }
  if (const moat::cli::Command* command = find_command(name)) {
    moat::cli::ParsedArgs args = moat::cli::parse_args(command->spec, std::span<char* const>(argv + 2, argc - 2));
    if (args.help) {
      std::cout << moat::cli::help_text(command->spec);
      return 0;
    }
    return command->run(args);
  }
  if (name.starts_with("-"))
    moat::user_error("moat takes a command first, then options: moat run ", name, " ... (llama-cli's options work "
                     "after `moat run`, llama-bench's after `moat bench`; see: moat --help)");
  std::vector<std::string_view> names;
  for (const auto* c : all_commands()) names.push_back(c->spec.name);
  const std::string nearest = moat::cli::nearest_option(name, "", names);
  if (!nearest.empty()) moat::user_error("unknown command '", name, "'; did you mean ", nearest, "? (see: moat --help)");
  moat::user_error("unknown command '", name, "' (see: moat --help)");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    return dispatch(argc, argv);
  } catch (const moat::UserError& e) {
    std::cout.flush();
    std::fprintf(stderr, "moat: error: %s\n", e.what());
    return 2;
  } catch (const moat::InternalError& e) {
    std::cout.flush();
    std::fprintf(stderr, "moat: %s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "moat: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "moat: internal error: %s (this is a bug in moatless; please report it)\n", e.what());
    return 1;
  }
}
