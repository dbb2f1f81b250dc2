// Pre-tokenization: the text is cut into words before BPE, by a list of regular
// expressions applied in sequence. Each expression cuts every piece so far into its
// matches and the gaps between them (Hugging Face's Split with behaviour "isolated";
// llama.cpp's unicode_regex_split). Expressions use PCRE2 syntax in UTF + UCP mode, so
// \p{L}, \p{N}, \s ... are the Unicode classes; `$` matches only at the end of a piece.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace moat::tok {

class PreTokenizer {
 public:
  // The pre-tokenizer named by GGUF's tokenizer.ggml.pre: deepseek-llm, deepseek-coder,
  // deepseek-v3, qwen2, llama-bpe or gpt-2. UserError for another name, naming
  // `source` and listing the supported ones.
  static PreTokenizer named(std::string_view name, std::string_view source);
  // From expressions (e.g. a tokenizer.json's Split patterns). UserError naming
  // `source` when one does not compile.
  static PreTokenizer from_regexes(std::vector<std::string> regexes, std::string_view source);
  // The names `named` accepts.
  static std::vector<std::string> supported_names();

  // `text` (valid UTF-8) cut into consecutive non-empty pieces that concatenate to it.
  std::vector<std::string_view> split(std::string_view text) const;

  const std::vector<std::string>& regexes() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace moat::tok
