// Malformed GGUF files: every variant parses correctly or throws UserError — never a
// crash, another exception type, or undefined behaviour (run under ASan + UBSan in CI) —
// and targeted malicious files get specific messages.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>

#include "frontend/gguf.h"
#include "frontend/gguf_writer.h"
#include "support/error.h"
#include "tests/test_data.h"

using namespace moat::gguf;

namespace {

std::vector<uint8_t> every_type_file() {
  Writer w;
  w.set_string("general.architecture", "deepseek2");
  w.set_u8("u8", 1);
  w.set_i8("i8", -1);
  w.set_u16("u16", 2);
  w.set_i16("i16", -2);
  w.set_u32("u32", 3);
  w.set_i32("i32", -3);
  w.set_f32("f32", 4.0f);
  w.set_bool("bool", true);
  w.set_u64("u64", 5);
  w.set_i64("i64", -5);
  w.set_f64("f64", 6.0);
  w.set_string_array("strings", {"a", "bb", "ccc"});
  Value inner{.type = ValueType::array, .elem_type = ValueType::i32};
  inner.array.push_back(Value{.type = ValueType::i32, .i = 7});
  w.set_array("nested", ValueType::array, {inner, inner});
  std::vector<uint8_t> data(34 * 4, 1);
  w.add_tensor("q", GgmlType::Q8_0, {64, 2}, data);
  w.add_tensor("f", GgmlType::F32, {8}, std::span(data).first(32));
  w.add_tensor("h", GgmlType::F16, {4, 1, 1, 2}, std::span(data).first(16));
  return w.to_bytes();
}

std::vector<uint8_t> tiny_file() {
  std::vector<uint8_t> bytes = moat::testing::read_bytes(std::string(MOAT_SOURCE_DIR) + "/tests/data/tiny.gguf");
  REQUIRE_MESSAGE(bytes.size() > 1000, "tests/data/tiny.gguf is missing (tools/make_test_gguf.py writes it)");
  return bytes;
}

// Parses; returns "" on success (after checking the result is self-consistent), the
// UserError's message otherwise. Any other exception is a failure.
std::string outcome(const std::vector<uint8_t>& bytes) {
  try {
    File f = File::parse(bytes, "corrupt.gguf");
    CHECK(f.data_offset() <= bytes.size());
    for (const TensorInfo& t : f.tensors()) {
      CHECK(t.data.size() == t.bytes);
      CHECK(t.offset % f.alignment() == 0);
      if (t.bytes > 0) {
        CHECK(t.data.data() >= bytes.data() + f.data_offset());
        CHECK(t.data.data() + t.data.size() <= bytes.data() + bytes.size());
      }
    }
    return "";
  } catch (const moat::UserError& e) {
    std::string message = e.what();
    CHECK(message.rfind("corrupt.gguf: ", 0) == 0);
    return message;
  } catch (const std::exception& e) {
    FAIL_CHECK("not a UserError: ", e.what());
    return "other exception";
  }
}

void patch_u32(std::vector<uint8_t>& bytes, size_t at, uint32_t value) { std::memcpy(bytes.data() + at, &value, 4); }
void patch_u64(std::vector<uint8_t>& bytes, size_t at, uint64_t value) { std::memcpy(bytes.data() + at, &value, 8); }

// Byte offset of the first occurrence of `text` in `bytes`.
size_t find_text(const std::vector<uint8_t>& bytes, std::string_view text) {
  auto it = std::search(bytes.begin(), bytes.end(), text.begin(), text.end());
  REQUIRE(it != bytes.end());
  return static_cast<size_t>(it - bytes.begin());
}

// The message must be exactly `expected` (a full message, path and offset included).
void expect(const std::vector<uint8_t>& bytes, const std::string& expected) {
  CHECK(outcome(bytes) == "corrupt.gguf: " + expected);
}

}  // namespace

TEST_CASE("gguf: truncation at every offset") {
  for (const auto& original : {every_type_file(), tiny_file()}) {
    REQUIRE(outcome(original).empty());
    size_t failures = 0;
    for (size_t cut = 0; cut < original.size(); ++cut) {
      std::vector<uint8_t> bytes(original.begin(), original.begin() + static_cast<std::ptrdiff_t>(cut));
      if (!outcome(bytes).empty()) ++failures;
    }
    // Every cut that removes header or tensor bytes must be rejected; only the padding
    // after the last tensor (< 32 bytes) may go unnoticed.
    CHECK(failures >= original.size() - 31);
  }
}

TEST_CASE("gguf: byte flips across the header, key-values and tensor infos") {
  for (const auto& original : {every_type_file(), tiny_file()}) {
    File clean = File::parse(original, "clean.gguf");
    size_t rejected = 0;
    for (size_t at = 0; at < clean.data_offset(); ++at) {
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
        if (!outcome(bytes).empty()) ++rejected;
      }
    }
    CHECK(rejected > clean.data_offset());  // most flips of structure are caught
  }
}

TEST_CASE("gguf: huge counts, lengths, dimensions and offsets in every 8-byte window") {
  for (const auto& original : {every_type_file(), tiny_file()}) {
    File clean = File::parse(original, "clean.gguf");
    for (size_t at = 0; at + 8 <= clean.data_offset(); ++at) {
      for (uint64_t huge : {uint64_t{1} << 63, UINT64_MAX, uint64_t{1} << 32, uint64_t{1} << 40, UINT64_MAX - 31}) {
        std::vector<uint8_t> bytes = original;
        patch_u64(bytes, at, huge);
        outcome(bytes);
      }
    }
  }
}

TEST_CASE("gguf: random multi-byte mutations") {
  std::vector<uint8_t> original = every_type_file();
  uint64_t state = 0x9e3779b97f4a7c15u;
  auto next = [&] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  for (int round = 0; round < 3000; ++round) {
    std::vector<uint8_t> bytes = original;
    int n = 1 + static_cast<int>(next() % 6);
    for (int k = 0; k < n; ++k) bytes[next() % bytes.size()] = static_cast<uint8_t>(next());
    outcome(bytes);
  }
}

TEST_CASE("gguf: header: magic, version, endianness") {
  std::vector<uint8_t> base = every_type_file();
  expect({'G', 'G', 'U'}, "not a GGUF file (the first 4 bytes are not 'GGUF'); give a GGUF model file or a Hugging Face model folder");
  expect({'G', 'G', 'U', 'F', 3, 0}, "at byte 4: the file ends inside the version (truncated?)");
  std::vector<uint8_t> bytes = base;
  patch_u32(bytes, 4, 1);
  expect(bytes, "at byte 4: GGUF version 1 is too old; re-convert the model with a current llama.cpp");
  patch_u32(bytes, 4, 4);
  expect(bytes, "at byte 4: unsupported GGUF version 4 (supported: 2 and 3)");
  patch_u32(bytes, 4, 0x03000000);  // version 3 written big-endian
  CHECK(outcome(bytes).find("big-endian file") != std::string::npos);
  patch_u32(bytes, 4, 2);  // v2 has the same layout as v3
  CHECK(outcome(bytes).empty());
  CHECK(File::parse(bytes, "v2").version() == 2);
}

TEST_CASE("gguf: key-values: huge lengths and counts, duplicates, bad types, deep nesting") {
  std::vector<uint8_t> bytes = every_type_file();
  patch_u64(bytes, 24, uint64_t{1} << 62);  // length of the first key
  CHECK(outcome(bytes).rfind("corrupt.gguf: at byte 24: length 4611686018427387904 of a metadata key runs past the end "
                             "of the file", 0) == 0);

  bytes = every_type_file();
  patch_u64(bytes, 16, uint64_t{1} << 60);
  expect(bytes, "at byte 16: metadata count 1152921504606846976 is larger than the file can hold (the file is truncated or corrupt)");

  bytes = every_type_file();
  patch_u64(bytes, 8, UINT64_MAX);
  expect(bytes, "at byte 8: tensor count 18446744073709551615 is larger than the file can hold (the file is truncated or corrupt)");

  Writer one_array;
  one_array.set_string_array("arr", {"x"});
  bytes = one_array.to_bytes();
  // key length 24, "arr" 32, type 35, element type 39, count 43
  patch_u64(bytes, 43, uint64_t{1} << 40);
  expect(bytes, "at byte 43: metadata key \"arr\": array length 1099511627776 is larger than the file can hold (the file is truncated or corrupt)");
  patch_u64(bytes, 43, 1);
  patch_u32(bytes, 39, 13);
  expect(bytes, "at byte 39: metadata key \"arr\" has unknown array element type 13");
  patch_u32(bytes, 35, 99);
  expect(bytes, "at byte 35: metadata key \"arr\" has unknown value type 99");

  Writer two_keys;
  two_keys.set_u8("k1", 1);
  two_keys.set_u8("k2", 2);
  bytes = two_keys.to_bytes();
  bytes[find_text(bytes, "k2") + 1] = '1';
  expect(bytes, "at byte 39: metadata key \"k1\" appears twice");

  Writer empty_key;
  empty_key.set_u8("", 1);
  expect(empty_key.to_bytes(), "at byte 24: metadata key #0 is empty");

  Writer bad_string;
  bad_string.set_string("s", "abc");
  bytes = bad_string.to_bytes();
  bytes.resize(24 + 9 + 4 + 8 + 2);  // inside the value
  expect(bytes, "at byte 37: length 3 of the value of \"s\" runs past the end of the file (2 bytes left)");
  bytes.resize(24 + 9 + 4 + 3);
  expect(bytes, "at byte 37: the file ends inside the value of \"s\" (truncated?)");

  // Arrays nested `depth` deep (an empty u8 array innermost), written byte by byte: a
  // recursive writer (and Value's recursive destructor) would be the deep part.
  auto nested = [](int depth) {
    std::vector<uint8_t> b;
    auto u32 = [&](uint32_t v) { for (int i = 0; i < 4; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i))); };
    auto u64 = [&](uint64_t v) { for (int i = 0; i < 8; ++i) b.push_back(static_cast<uint8_t>(v >> (8 * i))); };
    b = {'G', 'G', 'U', 'F'};
    u32(3);
    u64(0);  // tensors
    u64(1);  // key-values
    u64(4);
    b.insert(b.end(), {'d', 'e', 'e', 'p'});
    u32(9);  // array
    for (int d = 1; d < depth; ++d) {
      u32(9);  // of arrays
      u64(1);
    }
    u32(0);  // of u8
    u64(0);
    return b;
  };
  CHECK(outcome(nested(10000)).find("arrays nested more than 16 deep") != std::string::npos);  // no stack overflow
}

TEST_CASE("gguf: general.alignment must be a u32 power of two") {
  for (uint32_t bad : {0u, 24u, 0x80000001u}) {
    Writer w;
    w.set_u32("general.alignment", bad);
    expect(w.to_bytes(), moat::cat("at byte 24: metadata key general.alignment is ", bad, ", expected a power of two"));
  }
  Writer wrong_type;
  wrong_type.set_u64("general.alignment", 32);
  expect(wrong_type.to_bytes(), "at byte 24: metadata key general.alignment is u64, expected a u32 power of two");
  Writer ok;
  ok.set_u32("general.alignment", 1);
  std::vector<uint8_t> data(8, 0);
  ok.add_tensor("t", GgmlType::I8, {3}, std::span(data).first(3));
  CHECK(File::parse(ok.to_bytes(), "a1").alignment() == 1);
}

TEST_CASE("gguf: tensor infos: dimensions, types, blocks, duplicates, offsets") {
  std::vector<uint8_t> data(512, 0);
  auto one_tensor = [&](GgmlType type, std::vector<uint64_t> dims, size_t bytes) {
    Writer w;
    w.add_tensor("t", type, std::move(dims), std::span(data).first(bytes));
    return w.to_bytes();
  };
  // Layout of a lone tensor "t": name length 24, name 32, n_dims 33, dims 37, then type, offset.
  expect(one_tensor(GgmlType::F32, {2, 2, 2, 2, 2}, 128), "at byte 33: tensor \"t\" has 5 dimensions (at most 4)");
  expect(one_tensor(GgmlType::F32, {uint64_t{1} << 32, uint64_t{1} << 32}, 0),
         "at byte 45: tensor \"t\" has too many elements (dimension 1 is 4294967296)");
  expect(one_tensor(GgmlType::F32, {uint64_t{1} << 63}, 0),
         "at byte 37: tensor \"t\" has too many elements (dimension 0 is 9223372036854775808)");
  expect(one_tensor(GgmlType::F32, {uint64_t{1} << 62}, 0),
         "at byte 24: tensor \"t\" is too large (4611686018427387904 elements of F32)");
  expect(one_tensor(static_cast<GgmlType>(99), {4}, 16),
         "at byte 45: tensor \"t\" has unknown ggml type 99 (the file is newer than this moatless, or corrupt)");
  CHECK(outcome(one_tensor(static_cast<GgmlType>(4), {4}, 16)).find("unknown ggml type 4") != std::string::npos);
  expect(one_tensor(GgmlType::Q4_0, {33}, 36), "at byte 24: tensor \"t\": first dimension 33 is not a multiple of the "
                                               "Q4_0 block size 32");
  CHECK(outcome(one_tensor(GgmlType::F32, {0, 7}, 0)).empty());  // empty tensors are fine
  CHECK(outcome(one_tensor(GgmlType::F32, {}, 4)).empty());      // so are scalars

  Writer duplicate;
  duplicate.add_tensor("t", GgmlType::F32, {4}, std::span(data).first(16));
  duplicate.add_tensor("t", GgmlType::F32, {4}, std::span(data).first(16));
  expect(duplicate.to_bytes(), "at byte 57: tensor \"t\" appears twice");

  std::vector<uint8_t> bytes = one_tensor(GgmlType::F32, {4}, 16);
  patch_u64(bytes, 49, 4);
  expect(bytes, "at byte 49: tensor \"t\" data offset 4 is not a multiple of the alignment 32");
  patch_u64(bytes, 49, 32);
  expect(bytes, "at byte 64: tensor \"t\" (16 bytes at data offset 32) extends past the end of the file (32 data "
                "bytes); the file is truncated or corrupt");
  patch_u64(bytes, 49, UINT64_MAX - 31);  // offset + bytes overflows
  CHECK(outcome(bytes).find("extends past the end of the file") != std::string::npos);
  bytes.resize(60);  // inside the padding before the data section
  expect(bytes, "at byte 57: the data section (at byte 64) starts past the end of the file (60 bytes); the file is "
                "truncated");
}

TEST_CASE("gguf: tensor data past the end of a real multi-tensor file") {
  std::vector<uint8_t> bytes = every_type_file();
  bytes.resize(bytes.size() - 100);
  std::string message = outcome(bytes);
  CHECK(message.find("tensor \"q\" (136 bytes at data offset 0) extends past the end of the file") != std::string::npos);
}
