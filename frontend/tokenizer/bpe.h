// Byte-pair encoding of one pre-tokenized word over a byte-level vocabulary: the word's
// characters are merged pairwise, always the adjacent pair with the lowest merge rank
// first (leftmost among equals), until no pair has a rank (GPT-2's and llama.cpp's
// algorithm).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace moat::tok {

class Bpe {
 public:
  // tokens: id -> byte-level spelling; merges: (left, right) spellings, rank = index.
  // ignore_merges: a word that is itself a token is that token (llama 3's tokenizer).
  Bpe(const std::vector<std::string>& tokens, const std::vector<std::pair<std::string, std::string>>& merges,
      bool ignore_merges);

  // Appends the ids of `word` (byte-level spelling). A final piece that is not a token
  // falls back to one token per character; characters without a token are dropped
  // (llama.cpp does the same; byte-level vocabularies have all 256).
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;

  // The id of a spelling, or -1.
  int32_t find(std::string_view spelling) const;

 private:
  struct PairHash {
    size_t operator()(const std::pair<std::string, std::string>& p) const;
  };
  std::unordered_map<std::string, int32_t> ids_;
  std::unordered_map<std::pair<std::string, std::string>, int32_t, PairHash> ranks_;
  bool ignore_merges_ = false;

  int32_t rank(std::string_view left, std::string_view right) const;
};

}  // namespace moat::tok
