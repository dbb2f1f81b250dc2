// The state behind a Tokenizer (private to frontend/tokenizer/).
#pragma once

#include <optional>

#include "frontend/tokenizer/bpe.h"
#include "frontend/tokenizer/tokenizer.h"

namespace moat::tok {

struct Tokenizer::Impl {
  VocabSpec spec;
  PreTokenizer pre;
  std::optional<Bpe> bpe;
  std::vector<std::string> bytes;  // id -> decoded bytes (control: their text)
  // Control and user-defined tokens found in text before pre-tokenization: longest
  // spelling first, then lowest id.
  std::vector<std::pair<std::string, int32_t>> specials;
};

}  // namespace moat::tok
