// Malformed GGUF files: every variant parses correctly or throws UserError — never a
// crash, another exception type, or undefined behaviour (run under ASan + UBSan in CI).
#include <doctest/doctest.h>

#include <cstring>
#include <fstream>
#include <iterator>

#include "frontend/gguf.h"
#include "frontend/gguf_writer.h"
#include "support/error.h"
#include "tests/test_data.h"

using namespace moat::gguf;

namespace {

std::vector<uint8_t> every_type_file() {
  Writer w;
  w.set_string("general.architecture", "deepseek2");
  w.set("u8", Value{.type = ValueType::u8, .u = 1});
  w.set("i16", Value{.type = ValueType::i16, .i = -2});
  w.set_u32("u32", 3);
  w.set_f32("f32", 4.0f);
  w.set_bool("bool", true);
  w.set_u64("u64", 5);
  w.set("f64", Value{.type = ValueType::f64, .f = 6.0});
  w.set_string_array("strings", {"a", "bb", "ccc"});
  Value inner{.type = ValueType::array, .elem_type = ValueType::i32};
  inner.array.push_back(Value{.type = ValueType::i32, .i = 7});
  Value outer{.type = ValueType::array, .elem_type = ValueType::array};
  outer.array = {inner, inner};
  w.set("nested", outer);
  std::vector<uint8_t> data(34 * 4, 1);
  w.add_tensor("q", GgmlType::Q8_0, {64, 2}, data);
  w.add_tensor("f", GgmlType::F32, {8}, std::span(data).first(32));
  return w.to_bytes();
}

// Parses; returns "" on success (after checking the result is self-consistent), the
// UserError's message otherwise. Any other exception fails the test.
std::string outcome(const std::vector<uint8_t>& bytes) {
  try {
    File f = File::parse(bytes, "corrupt.gguf");
    for (const TensorInfo& t : f.tensors()) {
      CHECK(t.data.size() == t.bytes);
      if (t.bytes > 0) {
        CHECK(t.data.data() >= bytes.data());
        CHECK(t.data.data() + t.data.size() <= bytes.data() + bytes.size());
      }
    }
    return "";
  } catch (const moat::UserError& e) {
    std::string message = e.what();
    CHECK(message.rfind("corrupt.gguf: ", 0) == 0);
    return message;
  }
}

void patch_u64(std::vector<uint8_t>& bytes, size_t at, uint64_t value) { std::memcpy(bytes.data() + at, &value, 8); }

}  // namespace

TEST_CASE("truncation at every offset") {
  for (const auto& original : {every_type_file(), moat::testing::read_bytes(std::string(MOAT_SOURCE_DIR) + "/tests/data/tiny.gguf")}) {
    REQUIRE(original.size() > 100);
    size_t failures = 0;
    for (size_t cut = 0; cut < original.size(); ++cut) {
      std::vector<uint8_t> bytes(original.begin(), original.begin() + static_cast<std::ptrdiff_t>(cut));
      if (!outcome(bytes).empty()) ++failures;
    }
    // Every cut that removes tensor data or header bytes must be rejected; only the
    // trailing padding after the last tensor may go unnoticed.
    CHECK(failures >= original.size() - 32);
    CHECK(outcome(original).empty());
  }
}

TEST_CASE("byte flips across the header and tensor infos") {
  for (const auto& original : {every_type_file(), moat::testing::read_bytes(std::string(MOAT_SOURCE_DIR) + "/tests/data/tiny.gguf")}) {
    File clean = File::parse(original, "clean.gguf");
    size_t header_end = clean.data_offset();
    for (size_t at = 0; at < header_end; ++at) {
      for (int variant = 0; variant < 5; ++variant) {
        std::vector<uint8_t> bytes = original;
        uint8_t& b = bytes[at];
        switch (variant) {
          case 0: b = 0x00; break;
          case 1: b = 0xff; break;
          case 2: b = 0x80; break;
          case 3: b ^= 0x01; break;
          case 4: b ^= 0x40; break;
        }
        outcome(bytes);
      }
    }
  }
}

TEST_CASE("huge counts and lengths in every 8-byte field of the header region") {
  std::vector<uint8_t> original = every_type_file();
  File clean = File::parse(original, "clean.gguf");
  for (size_t at = 0; at + 8 <= clean.data_offset(); ++at) {
    for (uint64_t huge : {uint64_t{1} << 63, UINT64_MAX, uint64_t{1} << 32, uint64_t{1} << 40}) {
      std::vector<uint8_t> bytes = original;
      patch_u64(bytes, at, huge);
      outcome(bytes);
    }
  }
}

TEST_CASE("targeted malicious files get specific messages") {
  auto message_of = [](const std::vector<uint8_t>& bytes) { return outcome(bytes); };
  auto has = [](const std::string& message, const char* part) {
    INFO(message);
    CHECK(message.find(part) != std::string::npos);
  };
  std::vector<uint8_t> base = every_type_file();

  std::vector<uint8_t> bytes = base;
  patch_u64(bytes, 24, uint64_t{1} << 62);  // length of the first key
  has(message_of(bytes), "at byte 24: length 4611686018427387904 of a metadata key runs past the end");

  Writer one_array;
  one_array.set_string_array("arr", {"x"});
  bytes = one_array.to_bytes();
  patch_u64(bytes, 24 + 8 + 3 + 4 + 4, uint64_t{1} << 40);  // the array's length
  has(message_of(bytes), "array length 1099511627776 is larger than the file can hold");

  bytes = base;
  patch_u64(bytes, 16, uint64_t{1} << 60);  // key-value count
  has(message_of(bytes), "metadata count 1152921504606846976 is larger than the file can hold");

  bytes = base;
  bytes.resize(bytes.size() - 64);
  has(message_of(bytes), "tensor \"q\"");
  has(message_of(bytes), "extends past the end of the file");

  Writer five_dims;
  std::vector<uint8_t> data(32 * 4, 0);
  five_dims.add_tensor("t", GgmlType::F32, {2, 2, 2, 2, 2}, std::span(data).first(128));
  has(message_of(five_dims.to_bytes()), "tensor \"t\" has 5 dimensions (at most 4)");

  Writer unknown_type;
  unknown_type.add_tensor("t", static_cast<GgmlType>(99), {4}, std::span(data).first(16));
  has(message_of(unknown_type.to_bytes()), "tensor \"t\" has unknown ggml type 99");

  Writer partial_block;
  partial_block.add_tensor("t", GgmlType::Q4_0, {33}, std::span(data).first(36));
  has(message_of(partial_block.to_bytes()), "first dimension 33 is not a multiple of the Q4_0 block size 32");

  Writer duplicate;
  duplicate.add_tensor("t", GgmlType::F32, {4}, std::span(data).first(16));
  duplicate.add_tensor("t", GgmlType::F32, {4}, std::span(data).first(16));
  has(message_of(duplicate.to_bytes()), "tensor \"t\" appears twice");

  Writer bad_alignment;
  bad_alignment.set_u32("general.alignment", 24);
  has(message_of(bad_alignment.to_bytes()), "general.alignment must be a u32 power of two");

  Writer misaligned;
  misaligned.add_tensor("t", GgmlType::F32, {4}, std::span(data).first(16));
  bytes = misaligned.to_bytes();
  // header 24 + name (8 + 1) + n_dims 4 + dim 8 + type 4 = offset field at 49
  patch_u64(bytes, 49, 4);
  has(message_of(bytes), "data offset 4 is not a multiple of the alignment 32");

  bytes = base;
  bytes[4] = 1;
  has(message_of(bytes), "GGUF version 1 is too old");
  bytes = base;
  bytes[4] = 0;
  bytes[7] = 3;  // version 3 written big-endian
  has(message_of(bytes), "big-endian");
  has(message_of({'G', 'G', 'U'}), "not a GGUF file");
}
