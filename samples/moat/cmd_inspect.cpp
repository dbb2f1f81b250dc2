#include "samples/moat/commands.h"
#include "support/error.h"
namespace moat::cli {
namespace {
const Command kInspect{{"inspect", "FILE|DIR [--json]", "show a model file's metadata and tensors",
                        {{"--json", "", "print one JSON object"}}, 1, 1},
                       [](const ParsedArgs&) -> int { user_error("not yet"); }};
}
const Command& inspect_command() { return kInspect; }
}  // namespace moat::cli
