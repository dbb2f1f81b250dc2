// The moat subcommands: each has a spec (options, help) and a handler that returns
// the process exit code. Handlers throw UserError / InternalError; main() maps those to
// exit codes 2 / 1.
#pragma once

#include "samples/moat/args.h"

namespace moat::cli {

struct Command {
  CommandSpec spec;
  int (*run)(const ParsedArgs& args);
};

const Command& devices_command();
const Command& inspect_command();
const Command& emit_command();
const Command& run_command();
const Command& tokenize_command();
const Command& bench_command();
const Command& perplexity_command();
const Command& serve_command();

}  // namespace moat::cli
