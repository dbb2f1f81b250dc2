// Commands whose option contract is fixed (issue #2) but whose implementation arrives
// with later issues. They parse their options exactly, then say so and exit 2.
#include "samples/moat/commands.h"
#include "support/error.h"

namespace moat::cli {

namespace {

int not_yet(std::string_view name, std::string_view issue) {
  user_error("moat ", name, " is not implemented in this build yet (it arrives with ", issue, ")");
}

const Command kTokenize{
    {"tokenize", "-m MODEL (-p TEXT | -f FILE) [--no-bos]", "print the token ids of a text, space separated",
     {{"-m", "MODEL", "model file (GGUF) or Hugging Face folder"},
      {"-p", "TEXT", "the text"},
      {"-f", "FILE", "read the text from FILE"},
      {"--no-bos", "", "do not add the beginning-of-sequence token"}}},
    [](const ParsedArgs&) { return not_yet("tokenize", "the text generation issue"); }};

const Command kRun{
    {"run",
     "[-m MODEL] [--device ID] (-p TEXT | -f FILE | --tokens ID,ID,...) [-n N] [--ctx N] [--batch K] [--temp T] "
     "[--top-k K] [--top-p P] [--min-p P] [--seed S] [-t N] [--logits-out FILE.npy] [--chat]",
     "generate text (or logits) with a model on a device",
     {{"-m", "MODEL", "model file (GGUF) or Hugging Face folder"},
      {"--device", "ID", "cpu, opencl:N, cuda:N or hip:N"},
      {"-p", "TEXT", "prompt"},
      {"-f", "FILE", "read the prompt from FILE"},
      {"--tokens", "IDS", "prompt as comma-separated token ids"},
      {"-n", "N", "tokens to generate"},
      {"--ctx", "N", "context length"},
      {"--batch", "K", "prompt tokens per forward pass"},
      {"--temp", "T", "sampling temperature (0 = greedy)"},
      {"--top-k", "K", "keep the K most likely tokens"},
      {"--top-p", "P", "nucleus sampling threshold"},
      {"--min-p", "P", "minimum probability relative to the best token"},
      {"--seed", "S", "random seed"},
      {"-t", "N", "CPU threads"},
      {"--logits-out", "FILE", "write the logits as .npy"},
      {"--chat", "", "interactive chat with the model's template"}}},
    [](const ParsedArgs&) { return not_yet("run", "the DeepSeek graphs and text generation issues"); }};

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

std::vector<const Command*> planned_commands() { return {&kTokenize, &kRun, &kBench}; }

}  // namespace moat::cli
