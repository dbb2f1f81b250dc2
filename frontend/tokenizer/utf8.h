// UTF-8 helpers shared by the tokenizer's pieces.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace moat::tok {

// Bytes of the UTF-8 sequence that starts with `lead` (1..4), or 0 when `lead` cannot
// start a sequence (a continuation byte 0x80..0xBF, or 0xF8..0xFF).
size_t utf8_sequence_length(uint8_t lead);

// Length of the valid UTF-8 sequence at text[pos], or 0 when the bytes there are not
// one (truncated, bad continuation, overlong, surrogate, above U+10FFFF).
size_t utf8_valid_length(std::string_view text, size_t pos);

// `text` with every byte that is not part of a valid sequence replaced by U+FFFD, as
// llama.cpp does before pre-tokenization. Returns `text` unchanged when it is valid.
std::string sanitize_utf8(std::string_view text);

// The UTF-8 encoding of a code point (<= U+10FFFF).
std::string utf8_encode(uint32_t cp);

}  // namespace moat::tok
