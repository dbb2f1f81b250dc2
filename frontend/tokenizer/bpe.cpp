#include "frontend/tokenizer/bpe.h"

#include <queue>

#include "frontend/tokenizer/utf8.h"

namespace moat::tok {

size_t Bpe::PairHash::operator()(const std::pair<std::string, std::string>& p) const {
  const size_t a = std::hash<std::string>{}(p.first), b = std::hash<std::string>{}(p.second);
  return a ^ (b + 0x9e3779b97f4a7c15ULL + (a << 6) + (a >> 2));
}

Bpe::Bpe(const std::vector<std::string>& tokens, const std::vector<std::pair<std::string, std::string>>& merges,
         bool ignore_merges)
    : ignore_merges_(ignore_merges) {
  ids_.reserve(tokens.size());
  // The first id wins for a duplicated spelling, as in llama.cpp's token_to_id.
  for (size_t i = 0; i < tokens.size(); ++i) ids_.emplace(tokens[i], static_cast<int32_t>(i));
  ranks_.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) ranks_.emplace(merges[i], static_cast<int32_t>(i));
}

int32_t Bpe::find(std::string_view spelling) const {
  auto it = ids_.find(std::string(spelling));
  return it == ids_.end() ? -1 : it->second;
}

int32_t Bpe::rank(std::string_view left, std::string_view right) const {
  auto it = ranks_.find({std::string(left), std::string(right)});
  return it == ranks_.end() ? -1 : it->second;
}

void Bpe::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_) {
    if (int32_t id = find(word); id >= 0) {
      out.push_back(id);
      return;
    }
  }
  // Symbols: a doubly linked list over the word's bytes; a merged symbol spans its
  // parts, the right one left empty (len 0).
  struct Symbol {
    size_t start, len;
    int prev, next;
  };
  std::vector<Symbol> symbols;
  for (size_t pos = 0; pos < word.size();) {
    size_t n = utf8_sequence_length(static_cast<uint8_t>(word[pos]));
    if (n == 0 || pos + n > word.size()) n = 1;
    const int index = static_cast<int>(symbols.size());
    symbols.push_back({pos, n, index - 1, index + 1});
    pos += n;
  }
  symbols.back().next = -1;

  struct Bigram {
    int left, right;
    int32_t rank;
    size_t size;  // bytes of the merged pair when queued; stale when the parts changed
  };
  const auto later = [](const Bigram& a, const Bigram& b) {
    return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
  };
  std::priority_queue<Bigram, std::vector<Bigram>, decltype(later)> queue(later);
  const auto text = [&](int i) { return word.substr(symbols[i].start, symbols[i].len); };
  const auto add_bigram = [&](int left, int right) {
    if (left < 0 || right < 0) return;
    const int32_t r = rank(text(left), text(right));
    if (r >= 0) queue.push({left, right, r, symbols[left].len + symbols[right].len});
  };
  for (size_t i = 1; i < symbols.size(); ++i) add_bigram(static_cast<int>(i) - 1, static_cast<int>(i));

  while (!queue.empty()) {
    const Bigram b = queue.top();
    queue.pop();
    Symbol& left = symbols[b.left];
    Symbol& right = symbols[b.right];
    if (left.len == 0 || right.len == 0 || left.next != b.right || left.len + right.len != b.size) continue;
    left.len += right.len;
    right.len = 0;
    left.next = right.next;
    if (right.next >= 0) symbols[right.next].prev = b.left;
    add_bigram(left.prev, b.left);
    add_bigram(b.left, left.next);
  }

  for (int i = 0; i >= 0; i = symbols[i].next) {
    const std::string_view piece = text(i);
    if (int32_t id = find(piece); id >= 0) {
      out.push_back(id);
      continue;
    }
    for (size_t pos = 0; pos < piece.size();) {
      size_t n = utf8_sequence_length(static_cast<uint8_t>(piece[pos]));
      if (n == 0 || pos + n > piece.size()) n = 1;
      if (int32_t id = find(piece.substr(pos, n)); id >= 0) out.push_back(id);
      pos += n;
    }
  }
}

}  // namespace moat::tok
