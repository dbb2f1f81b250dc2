// moat: the moatless command line. `moat --help` lists the commands.
#include <cstdio>
#include <exception>
#include <iostream>
#include <new>
#include <string_view>

#include "samples/moat/commands.h"
#include "support/error.h"

namespace {

std::vector<const moat::cli::Command*> all_commands() {
  return {&moat::cli::devices_command(), &moat::cli::inspect_command(), &moat::cli::emit_command(),
          &moat::cli::run_command(),     &moat::cli::tokenize_command(), &moat::cli::bench_command(),
          &moat::cli::perplexity_command()};
}

void print_usage(std::FILE* out) {
  std::fprintf(out, "moat %s: one model file, any GPU\n\nusage: moat COMMAND [options]\n\ncommands:\n", MOAT_VERSION);
  for (const auto* c : all_commands())
    std::fprintf(out, "  %-10s %.*s\n", std::string(c->spec.name).c_str(), static_cast<int>(c->spec.summary.size()),
                 c->spec.summary.data());
  std::fprintf(out, "\n`moat COMMAND --help` describes a command. Exit codes: 0 ok, 2 user error, 1 internal error.\n");
}

int dispatch(int argc, char** argv) {
  if (argc < 2) {
    print_usage(stderr);
    return 2;
  }
  std::string_view name = argv[1];
  if (name == "--help" || name == "-h" || name == "help") {
    print_usage(stdout);
    return 0;
  }
  if (name == "--version") {
    std::printf("moat %s\n", MOAT_VERSION);
    return 0;
  }
  for (const auto* command : all_commands()) {
    if (command->spec.name != name) continue;
    moat::cli::ParsedArgs args = moat::cli::parse_args(command->spec, std::span<char* const>(argv + 2, argc - 2));
    if (args.help) {
      std::cout << moat::cli::help_text(command->spec);
      return 0;
    }
    return command->run(args);
  }
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
