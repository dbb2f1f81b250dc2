// The named pre-tokenizers' expressions (see pre_tokenizer.h), in PCRE2 syntax.
#pragma once

#include <string>
#include <vector>

namespace moat::tok {

struct PreTokenizerEntry {
  std::string name;                  // GGUF tokenizer.ggml.pre
  std::vector<std::string> regexes;  // applied in order
};

const std::vector<PreTokenizerEntry>& pre_tokenizer_table();

}  // namespace moat::tok
