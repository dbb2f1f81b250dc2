// Commands whose option contract is fixed (issue #2) but whose implementation arrives
// with later issues. They parse their options exactly, then say so and exit 2.
#include "samples/moat/commands.h"
#include "support/error.h"

namespace moat::cli {

namespace {

int not_yet(std::string_view name, std::string_view issue) {
  user_error("moat ", name, " is not implemented in this build yet (it arrives with ", issue, ")");
}

const Command kBench{
    {"bench", "-m MODEL [--device all|ID,...] [-p N] [-n N] [-r N] [-t N] [--json F] [--md F] [--svg F]",
     "benchmark prefill and decode on one or more devices",
     {{"-m", "MODEL", "model file or folder"},
      {"--device", "IDS", "all, or a comma-separated list of device ids"},
      {"-p", "N", "prompt tokens"},
      {"-n", "N", "generated tokens"},
      {"-r", "N", "repetitions"},
      {"-t", "N", "CPU threads"},
      {"--json", "F", "write the results as JSON"},
      {"--md", "F", "write a Markdown report"},
      {"--svg", "F", "write an SVG chart"}}},
    [](const ParsedArgs&) { return not_yet("bench", "the benchmark issue"); }};

}  // namespace

std::vector<const Command*> planned_commands() { return {&kBench}; }

}  // namespace moat::cli
