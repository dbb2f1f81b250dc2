// GPT-2's byte-level alphabet: every byte is one printable code point, so that a BPE
// vocabulary of strings covers arbitrary bytes. Bytes '!'..'~', 0xA1..0xAC and
// 0xAE..0xFF stand for themselves; the other 68 map, in byte order, to U+0100....
// (Hugging Face tokenizers' ByteLevel, llama.cpp's unicode_byte_to_utf8.)
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace moat::tok {

// Raw bytes -> their byte-level spelling (UTF-8 of the mapped code points).
std::string bytes_to_byte_level(std::string_view bytes);

// The byte a byte-level character (one UTF-8 sequence) stands for, or nullopt when it
// is not in the alphabet.
std::optional<unsigned char> byte_level_char_to_byte(std::string_view ch);

// A byte-level spelling -> raw bytes. A character outside the alphabet is kept as is.
std::string byte_level_to_bytes(std::string_view text);

}  // namespace moat::tok
