#include "frontend/tokenizer/byte_level.h"

#include <array>
#include <unordered_map>

#include "frontend/tokenizer/utf8.h"

namespace moat::tok {

namespace {

struct Alphabet {
  std::array<std::string, 256> spelling;                  // byte -> UTF-8
  std::unordered_map<uint32_t, unsigned char> byte_of;    // code point -> byte
};

const Alphabet& alphabet() {
  static const Alphabet a = [] {
    Alphabet out;
    const auto self = [](int b) {
      return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
    };
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) {
      const uint32_t cp = self(b) ? static_cast<uint32_t>(b) : next++;
      out.spelling[b] = utf8_encode(cp);
      out.byte_of[cp] = static_cast<unsigned char>(b);
    }
    return out;
  }();
  return a;
}

uint32_t decode_code_point(std::string_view ch) {
  const auto b = [&](size_t i) { return static_cast<uint32_t>(static_cast<uint8_t>(ch[i])); };
  switch (ch.size()) {
    case 1: return b(0);
    case 2: return ((b(0) & 0x1F) << 6) | (b(1) & 0x3F);
    case 3: return ((b(0) & 0x0F) << 12) | ((b(1) & 0x3F) << 6) | (b(2) & 0x3F);
    default: return ((b(0) & 0x07) << 18) | ((b(1) & 0x3F) << 12) | ((b(2) & 0x3F) << 6) | (b(3) & 0x3F);
  }
}

}  // namespace

std::string bytes_to_byte_level(std::string_view bytes) {
  const Alphabet& a = alphabet();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (char c : bytes) out += a.spelling[static_cast<unsigned char>(c)];
  return out;
}

std::optional<unsigned char> byte_level_char_to_byte(std::string_view ch) {
  if (ch.empty() || ch.size() > 4 || utf8_valid_length(ch, 0) != ch.size()) return std::nullopt;
  const Alphabet& a = alphabet();
  auto it = a.byte_of.find(decode_code_point(ch));
  if (it == a.byte_of.end()) return std::nullopt;
  return it->second;
}

std::string byte_level_to_bytes(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t pos = 0; pos < text.size();) {
    size_t n = utf8_valid_length(text, pos);
    if (n == 0) n = 1;
    const std::string_view ch = text.substr(pos, n);
    if (auto b = byte_level_char_to_byte(ch)) out += static_cast<char>(*b);
    else out.append(ch);
    pos += n;
  }
  return out;
}

}  // namespace moat::tok
