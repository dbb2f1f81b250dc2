// Helpers for tests that read committed data files under tests/data/.
#pragma once

#include <doctest/doctest.h>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

namespace moat::testing {

// The bytes of a file ("" when it cannot be read; callers check the size).
inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// A little-endian array of T from tests/data/quant/NAME (made by tools/make_quant_vectors.py).
template <class T>
std::vector<T> read_vector(const std::string& name) {
  const std::string path = std::string(MOAT_SOURCE_DIR) + "/tests/data/quant/" + name;
  std::vector<uint8_t> bytes = read_bytes(path);
  REQUIRE_MESSAGE(!bytes.empty(), "missing ", path, " (run tools/make_quant_vectors.py)");
  REQUIRE(bytes.size() % sizeof(T) == 0);
  std::vector<T> out(bytes.size() / sizeof(T));
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

}  // namespace moat::testing
