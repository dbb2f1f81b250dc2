#include "frontend/tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>

#include "frontend/gguf.h"
#include "frontend/tokenizer/byte_level.h"
#include "frontend/tokenizer/tokenizer_impl.h"
#include "frontend/tokenizer/utf8.h"
#include "support/error.h"

namespace moat::tok {

Tokenizer Tokenizer::build(VocabSpec spec, PreTokenizer pre) {
  if (spec.tokens.empty()) user_error(spec.source, ": the tokenizer has no tokens");
  if (spec.types.empty()) spec.types.assign(spec.tokens.size(), TokenType::normal);
  if (spec.types.size() != spec.tokens.size())
    user_error(spec.source, ": ", spec.types.size(), " token types for ", spec.tokens.size(),
               " tokens; the tokenizer's token_type list must have one entry per token");
  const auto check_id = [&](int32_t id, const char* what) {
    if (id < -1 || id >= static_cast<int64_t>(spec.tokens.size()))
      user_error(spec.source, ": the ", what, " token id ", id, " is outside the vocabulary of ", spec.tokens.size(),
                 " tokens");
  };
  check_id(spec.bos, "BOS");
  check_id(spec.eos, "EOS");

  auto impl = std::make_shared<Impl>();
  impl->bpe.emplace(spec.tokens, spec.merges, spec.ignore_merges);
  impl->bytes.resize(spec.tokens.size());
  for (size_t id = 0; id < spec.tokens.size(); ++id) {
    const std::string& text = spec.tokens[id];
    switch (spec.types[id]) {
      case TokenType::normal:
      case TokenType::byte: impl->bytes[id] = byte_level_to_bytes(text); break;
      case TokenType::unused: break;
      default: impl->bytes[id] = text; break;  // control, user-defined, unknown: as written
    }
    const bool special = spec.types[id] == TokenType::control || spec.types[id] == TokenType::user_defined;
    if (special && !text.empty()) impl->specials.emplace_back(text, static_cast<int32_t>(id));
  }
  std::sort(impl->specials.begin(), impl->specials.end(), [](const auto& a, const auto& b) {
    return a.first.size() != b.first.size() ? a.first.size() > b.first.size() : a.second < b.second;
  });
  impl->spec = std::move(spec);
  impl->pre = std::move(pre);
  Tokenizer out;
  out.impl_ = std::move(impl);
  return out;
}

std::vector<int32_t> Tokenizer::encode(std::string_view text, bool add_bos) const {
  const Impl& im = *impl_;
  std::vector<int32_t> ids;
  if (add_bos && im.spec.bos >= 0) ids.push_back(im.spec.bos);
  const std::string clean = sanitize_utf8(text);

  // Fragments: special tokens (id >= 0) and the plain text between them (id -1).
  struct Fragment {
    int32_t id;
    std::string_view text;
  };
  std::vector<Fragment> fragments;
  if (!clean.empty()) fragments.push_back({-1, clean});
  for (const auto& [spelling, id] : im.specials) {
    std::vector<Fragment> next;
    for (const Fragment& f : fragments) {
      if (f.id >= 0) {
        next.push_back(f);
        continue;
      }
      size_t done = 0;
      for (size_t at = f.text.find(spelling); at != std::string_view::npos; at = f.text.find(spelling, done)) {
        if (at > done) next.push_back({-1, f.text.substr(done, at - done)});
        next.push_back({id, f.text.substr(at, spelling.size())});
        done = at + spelling.size();
      }
      if (done < f.text.size()) next.push_back({-1, f.text.substr(done)});
    }
    fragments = std::move(next);
  }

  for (const Fragment& f : fragments) {
    if (f.id >= 0) {
      ids.push_back(f.id);
      continue;
    }
    for (std::string_view word : im.pre.split(f.text)) im.bpe->encode_word(bytes_to_byte_level(word), ids);
  }
  return ids;
}

std::string Tokenizer::token_bytes(int32_t id, bool render_special) const {
  const Impl& im = *impl_;
  if (id < 0 || static_cast<size_t>(id) >= im.bytes.size())
    user_error("token id ", id, " is outside the vocabulary of ", im.bytes.size(), " tokens (", im.spec.source, ")");
  if (!render_special && im.spec.types[id] == TokenType::control) return {};
  return im.bytes[id];
}

std::string Tokenizer::decode(std::span<const int32_t> ids, bool render_special) const {
  std::string out;
  for (int32_t id : ids) out += token_bytes(id, render_special);
  return out;
}

int32_t Tokenizer::bos() const { return impl_->spec.bos; }
int32_t Tokenizer::eos() const { return impl_->spec.eos; }
bool Tokenizer::add_bos() const { return impl_->spec.add_bos; }
const std::string& Tokenizer::chat_template() const { return impl_->spec.chat_template; }
size_t Tokenizer::vocab_size() const { return impl_->spec.tokens.size(); }
const PreTokenizer& Tokenizer::pre_tokenizer() const { return impl_->pre; }

const std::string& Tokenizer::token_text(int32_t id) const {
  (void)token_bytes(id);  // range check
  return impl_->spec.tokens[id];
}

TokenType Tokenizer::token_type(int32_t id) const {
  (void)token_bytes(id);  // range check
  return impl_->spec.types[id];
}

Tokenizer Tokenizer::open(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    const std::string json = (std::filesystem::path(path) / "tokenizer.json").string();
    if (!std::filesystem::exists(json, ec))
      user_error(path, ": the folder has no tokenizer.json; give a GGUF file or a Hugging Face folder with "
                 "tokenizer.json");
    return from_tokenizer_json(json);
  }
  return from_gguf(gguf::File::open(path));
}

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool render_special)
    : tokenizer_(&tokenizer), render_special_(render_special) {}

std::string StreamDecoder::push(int32_t id) {
  held_ += tokenizer_->token_bytes(id, render_special_);
  // Hold back the last sequence when it has started but not finished: a lead byte
  // within the last three bytes whose sequence runs past the end, followed only by
  // continuation bytes.
  size_t keep = 0;
  for (size_t back = 1; back <= 3 && back <= held_.size(); ++back) {
    const auto byte = static_cast<uint8_t>(held_[held_.size() - back]);
    if ((byte & 0xC0) == 0x80) continue;  // continuation byte: look further back
    const size_t n = utf8_sequence_length(byte);
    if (n > back) keep = back;
    break;
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StreamDecoder::flush() {
  std::string out;
  out.swap(held_);
  return out;
}

}  // namespace moat::tok
