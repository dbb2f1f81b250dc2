// moat tokenize: the token ids of a text, space separated on one line.
#include <cstdio>
#include <iostream>

#include "frontend/tokenizer/tokenizer.h"
#include "samples/moat/commands.h"
#include "support/error.h"

namespace moat::cli {

namespace {

int run_tokenize(const ParsedArgs& args) {
  if (args.has("-p") == args.has("-f"))
    user_error("moat tokenize needs one of -p TEXT or -f FILE (see moat tokenize --help)");
  const std::string model = args.value("-m");
  const std::string text = args.has("-p") ? args.value("-p") : read_option_file("-f", args.value("-f"));
  const tok::Tokenizer tokenizer = tok::Tokenizer::open(model);
  // An empty text is no ids, even with BOS: nothing to start.
  const bool bos = !args.has("--no-bos") && tokenizer.add_bos() && !text.empty();
  const std::vector<int32_t> ids = tokenizer.encode(text, bos);
  std::string line;
  for (size_t i = 0; i < ids.size(); ++i) line += (i ? " " : "") + std::to_string(ids[i]);
  std::cout << line << "\n";
  return 0;
}

const Command kTokenize{
    {"tokenize", "-m MODEL (-p TEXT | -f FILE) [--no-bos]", "print the token ids of a text, space separated",
     {{"-m", "MODEL", "model file (GGUF) or Hugging Face folder"},
      {"-p", "TEXT", "the text"},
      {"-f", "FILE", "read the text from FILE"},
      {"--no-bos", "", "do not add the beginning-of-sequence token"}}},
    run_tokenize};

}  // namespace

const Command& tokenize_command() { return kTokenize; }

}  // namespace moat::cli
