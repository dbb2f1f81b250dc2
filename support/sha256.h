// SHA-256 (FIPS 180-4), for content keys and checksums (the kernel cache). Not
// constant-time; never use it for secrets.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

namespace moat {

class Sha256 {
 public:
  using Digest = std::array<uint8_t, 32>;

  Sha256();
  Sha256& update(std::span<const uint8_t> bytes);
  Sha256& update(std::string_view text) {
    return update({reinterpret_cast<const uint8_t*>(text.data()), text.size()});
  }
  // The digest of everything updated so far; the object is spent afterwards.
  Digest finish();

 private:
  void block(const uint8_t* data);

  uint32_t state_[8];
  uint8_t buffer_[64];
  uint64_t length_ = 0;  // bytes seen
  size_t buffered_ = 0;  // bytes in buffer_
};

// Lower-case hex of a digest (64 characters).
std::string to_hex(const Sha256::Digest& digest);

}  // namespace moat
