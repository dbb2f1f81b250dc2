// SHA-256 against the FIPS 180-4 example vectors.
#include "support/sha256.h"

#include <doctest/doctest.h>

#include <string>

using moat::Sha256;
using moat::to_hex;

TEST_CASE("sha256 known vectors, in one piece and split at every offset") {
  CHECK(to_hex(Sha256().update("").finish()) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(to_hex(Sha256().update("abc").finish()) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string two_blocks = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  const std::string expected = "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1";
  CHECK(to_hex(Sha256().update(two_blocks).finish()) == expected);
  for (size_t split = 0; split <= two_blocks.size(); ++split) {
    Sha256 h;
    h.update(std::string_view(two_blocks).substr(0, split));
    h.update(std::string_view(two_blocks).substr(split));
    CHECK(to_hex(h.finish()) == expected);
  }
  std::string million(1000000, 'a');
  CHECK(to_hex(Sha256().update(million).finish()) == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}
