// Byte-level BPE tokenizers (GPT-2 style, as the DeepSeek family uses), read from a
// GGUF file's tokenizer.ggml.* metadata or from a Hugging Face tokenizer.json.
//
// Encoding: special tokens (control and user-defined) are found in the text first,
// longest first; the text between them is pre-tokenized (pre_tokenizer.h), each word
// spelled in the byte-level alphabet (byte_level.h) and BPE-merged (bpe.h).
// Decoding turns ids back into bytes; StreamDecoder does so token by token without
// ever returning part of a UTF-8 character.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "frontend/tokenizer/pre_tokenizer.h"

namespace moat::gguf {
class File;
}

namespace moat::tok {

// GGUF tokenizer.ggml.token_type values (llama.cpp's llama_token_type).
enum class TokenType : int32_t { normal = 1, unknown = 2, control = 3, user_defined = 4, unused = 5, byte = 6 };

// Everything a tokenizer is built from, whatever file it came from.
struct VocabSpec {
  std::string source;                 // the file, for messages
  std::vector<std::string> tokens;    // id -> spelling (byte-level for normal tokens)
  std::vector<TokenType> types;       // id -> type; empty: all normal
  std::vector<std::pair<std::string, std::string>> merges;  // rank = index
  int32_t bos = -1, eos = -1;         // -1: none
  bool add_bos = false;
  bool ignore_merges = false;         // a word that is a token is that token
  std::string chat_template;          // Jinja text as stored (tokenizer.chat_template); empty: none
};

class Tokenizer {
 public:
  // From tokenizer.ggml.*: model must be "gpt2" (byte-level BPE); pre selects the
  // pre-tokenizer. UserError naming the file and key for anything missing or unsupported.
  static Tokenizer from_gguf(const gguf::File& file);
  // From a Hugging Face tokenizer.json (model.type BPE, byte-level). UserError naming
  // the file for anything unsupported.
  static Tokenizer from_tokenizer_json(const std::string& path);
  // A GGUF file, or a folder holding tokenizer.json.
  static Tokenizer open(const std::string& path);
  static Tokenizer build(VocabSpec spec, PreTokenizer pre);

  // The ids of `text` (UTF-8; invalid bytes are read as U+FFFD), with BOS first when
  // `add_bos` and the vocabulary has one.
  std::vector<int32_t> encode(std::string_view text, bool add_bos) const;
  // The bytes of `ids`; control tokens are written as their text when `render_special`,
  // else left out. UserError for an id outside the vocabulary.
  std::string decode(std::span<const int32_t> ids, bool render_special = true) const;
  // The bytes of one token (may be part of a UTF-8 character).
  std::string token_bytes(int32_t id, bool render_special = true) const;

  int32_t bos() const;  // -1 when none
  int32_t eos() const;  // -1 when none
  bool add_bos() const;  // the model's default for prompts
  const std::string& chat_template() const;  // empty when the file has none
  size_t vocab_size() const;
  const std::string& token_text(int32_t id) const;  // as stored
  TokenType token_type(int32_t id) const;
  const PreTokenizer& pre_tokenizer() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

// Turns ids into text one at a time for streaming (the tokenizer must outlive the
// decoder): push() returns the bytes that now form complete UTF-8 characters and holds
// back an incomplete trailing sequence until a later token completes it. Bytes that can
// never form a character are passed on.
class StreamDecoder {
 public:
  explicit StreamDecoder(const Tokenizer& tokenizer, bool render_special = false);
  std::string push(int32_t id);
  // What is still held (an incomplete sequence at the end of the stream), then empty.
  std::string flush();

 private:
  const Tokenizer* tokenizer_;
  bool render_special_;
  std::string held_;
};

}  // namespace moat::tok
