#include "frontend/tokenizer/pre_tokenizer.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "frontend/tokenizer/pre_tokenizer_table.h"
#include "frontend/tokenizer/utf8.h"
#include "support/error.h"

namespace moat::tok {

namespace {

// One compiled expression. Match data is made per call, so a PreTokenizer can be used
// from several threads.
struct Regex {
  pcre2_code* code = nullptr;
  Regex() = default;
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  ~Regex() { pcre2_code_free(code); }
};

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof buffer);
  return reinterpret_cast<const char*>(buffer);
}

}  // namespace

struct PreTokenizer::Impl {
  std::vector<std::string> sources;
  std::vector<std::unique_ptr<Regex>> regexes;
};

PreTokenizer PreTokenizer::named(std::string_view name, std::string_view source) {
  for (const PreTokenizerEntry& e : pre_tokenizer_table())
    if (e.name == name) return from_regexes(e.regexes, cat(source, ": pre-tokenizer ", name));
  std::string names;
  for (const std::string& n : supported_names()) names += (names.empty() ? "" : ", ") + n;
  user_error(source, ": pre-tokenizer '", name, "' (tokenizer.ggml.pre) is not supported; supported: ", names,
             ". Convert the model with a tokenizer that uses one of these, or add its expressions to "
             "frontend/tokenizer/pre_tokenizer_table.cpp");
}

std::vector<std::string> PreTokenizer::supported_names() {
  std::vector<std::string> out;
  for (const PreTokenizerEntry& e : pre_tokenizer_table()) out.push_back(e.name);
  return out;
}

PreTokenizer PreTokenizer::from_regexes(std::vector<std::string> regexes, std::string_view source) {
  auto impl = std::make_shared<Impl>();
  for (const std::string& pattern : regexes) {
    int error = 0;
    PCRE2_SIZE offset = 0;
    auto regex = std::make_unique<Regex>();
    // UTF + UCP: Unicode classes; DOLLAR_ENDONLY: `$` only at the end of a piece, as in
    // llama.cpp's std::regex (Oniguruma, in tokenizers, also matches before a newline;
    // the named pre-tokenizers cut newlines off before any `$`).
    regex->code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                PCRE2_UTF | PCRE2_UCP | PCRE2_DOLLAR_ENDONLY, &error, &offset, nullptr);
    if (!regex->code)
      user_error(source, ": the expression '", pattern, "' does not compile (", pcre2_message(error), " at offset ",
                 offset, "); fix the tokenizer's pre-tokenizer pattern");
    pcre2_jit_compile(regex->code, PCRE2_JIT_COMPLETE);  // optional: falls back to the interpreter
    impl->regexes.push_back(std::move(regex));
  }
  impl->sources = std::move(regexes);
  PreTokenizer out;
  out.impl_ = std::move(impl);
  return out;
}

const std::vector<std::string>& PreTokenizer::regexes() const { return impl_->sources; }

std::vector<std::string_view> PreTokenizer::split(std::string_view text) const {
  // The matcher runs without re-checking UTF-8 on every call (which would be quadratic).
  for (size_t pos = 0; pos < text.size();) {
    const size_t n = utf8_valid_length(text, pos);
    if (n == 0) user_error("the text is not valid UTF-8 at byte ", pos);
    pos += n;
  }
  std::vector<std::string_view> pieces;
  if (!text.empty()) pieces.push_back(text);
  for (size_t r = 0; r < impl_->regexes.size(); ++r) {
    const Regex* regex = impl_->regexes[r].get();
    const std::unique_ptr<pcre2_match_data, void (*)(pcre2_match_data*)> match(
        pcre2_match_data_create_from_pattern(regex->code, nullptr), pcre2_match_data_free);
    MOAT_INTERNAL_CHECK(match != nullptr, "pcre2_match_data_create_from_pattern failed");
    pcre2_match_data* md = match.get();
    std::vector<std::string_view> next;
    next.reserve(pieces.size() * 2);
    for (std::string_view piece : pieces) {
      // Each piece is its own subject: lookarounds and `$` see its ends, as in
      // llama.cpp's regex_iterator over the piece and tokenizers' Split.
      const auto* subject = reinterpret_cast<PCRE2_SPTR>(piece.data());
      size_t start = 0, done = 0;
      while (start < piece.size()) {
        const int rc = pcre2_match(regex->code, subject, piece.size(), start, PCRE2_NO_UTF_CHECK, md, nullptr);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0)
          user_error("pre-tokenizer expression '", impl_->sources[r], "' failed on the text (", pcre2_message(rc), ")");
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t begin = ov[0], end = ov[1];
        if (end == begin) {  // an empty match cuts nothing: search again one character on
          if (begin >= piece.size()) break;
          const size_t n = utf8_sequence_length(static_cast<uint8_t>(piece[begin]));
          start = begin + (n == 0 ? 1 : n);
          continue;
        }
        if (begin > done) next.push_back(piece.substr(done, begin - done));
        next.push_back(piece.substr(begin, end - begin));
        done = start = end;
      }
      if (done < piece.size()) next.push_back(piece.substr(done));
    }
    pieces = std::move(next);
  }
  return pieces;
}

}  // namespace moat::tok
