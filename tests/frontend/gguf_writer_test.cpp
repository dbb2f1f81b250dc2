// The GGUF writer: byte layout, write -> read round-trips, and the fuzz seed corpus
// (tests/fuzz/corpus/gguf/*.gguf are this writer's output; see "fuzz seed corpus").
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "frontend/gguf.h"
#include "frontend/gguf_writer.h"
#include "support/error.h"
#include "tests/test_data.h"

using namespace moat::gguf;

namespace {

std::vector<uint8_t> pattern(size_t n, uint8_t seed) {
  std::vector<uint8_t> out(n);
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<uint8_t>(seed + 31 * i);
  return out;
}

Value nested_value() {
  Value inner{.type = ValueType::array, .elem_type = ValueType::f32};
  inner.array.push_back(Value{.type = ValueType::f32, .f = 1.5});
  Value empty{.type = ValueType::array, .elem_type = ValueType::string};
  Value mid{.type = ValueType::array, .elem_type = ValueType::array};
  mid.array = {inner, inner};
  Value outer{.type = ValueType::array, .elem_type = ValueType::array};
  outer.array = {mid, Value{.type = ValueType::array, .elem_type = ValueType::array, .array = {empty}}};
  return outer;  // [[[1.5], [1.5]], [[]]]
}

// Metadata of every value type and three tensors.
Writer every_type_writer(uint64_t alignment) {
  Writer w;
  w.set_alignment(alignment);
  w.set_string("general.architecture", "deepseek2");
  w.set_u8("k.u8", 255);
  w.set_i8("k.i8", -128);
  w.set_u16("k.u16", 65535);
  w.set_i16("k.i16", -32768);
  w.set_u32("k.u32", 0xffffffffu);
  w.set_i32("k.i32", INT32_MIN);
  w.set_f32("k.f32", -0.5f);
  w.set_bool("k.bool", true);
  w.set_u64("k.u64", UINT64_MAX);
  w.set_i64("k.i64", INT64_MIN);
  w.set_f64("k.f64", 1e300);
  w.set_string("k.string", std::string("nul\0inside", 10));
  w.set_string_array("k.strings", {"x", "", "yz"});
  w.set_i32_array("k.i32s", {1, -2, 3});
  w.set_f32_array("k.f32s", {});
  w.set("k.nested", nested_value());
  w.add_tensor("a", GgmlType::F32, {4, 3}, pattern(48, 1));        // 48 bytes
  w.add_tensor("b", GgmlType::Q8_0, {64}, pattern(2 * 34, 2));     // 68 bytes
  w.add_tensor("c", GgmlType::Q4_K, {256, 1, 1}, pattern(144, 3));  // 144 bytes
  return w;
}

}  // namespace

TEST_CASE("gguf: writer -> reader round-trip of every value type, nested arrays and tensors") {
  for (uint64_t alignment : {32u, 64u}) {
    CAPTURE(alignment);
    std::vector<uint8_t> bytes = every_type_writer(alignment).to_bytes();
    File f = File::parse(bytes, "mem");
    CHECK(f.version() == 3);
    CHECK(f.alignment() == alignment);
    CHECK(f.architecture() == "deepseek2");
    CHECK(f.find("k.u8")->u == 255);
    CHECK(f.find("k.i8")->i == -128);
    CHECK(f.find("k.u16")->u == 65535);
    CHECK(f.find("k.i16")->i == -32768);
    CHECK(f.get_u64("k.u32") == 0xffffffffu);
    CHECK(f.find("k.i32")->i == INT32_MIN);
    CHECK(f.get_f64("k.f32") == -0.5);
    CHECK(f.find("k.f32")->type == ValueType::f32);
    CHECK(f.get_bool("k.bool") == true);
    CHECK(f.get_u64("k.u64") == UINT64_MAX);
    CHECK(f.get_i64("k.i64") == INT64_MIN);
    CHECK(f.get_f64("k.f64") == 1e300);
    CHECK(f.get_string("k.string") == std::string("nul\0inside", 10));
    CHECK(f.find("k.strings")->array[2].str == "yz");
    CHECK(f.find("k.strings")->array[1].str.empty());
    CHECK(f.find("k.i32s")->as_array(ValueType::i32, "k")[1].i == -2);
    CHECK(f.find("k.f32s")->as_array(ValueType::f32, "k").empty());
    const Value& nested = *f.find("k.nested");
    REQUIRE(nested.array.size() == 2);
    CHECK(nested.array[0].elem_type == ValueType::array);
    CHECK(nested.array[0].array[1].array[0].f == 1.5);
    CHECK(nested.array[1].array[0].elem_type == ValueType::string);
    CHECK(nested.array[1].array[0].array.empty());
    CHECK(f.metadata()[0].key == "general.alignment");  // insertion order
    CHECK(f.metadata().back().key == "k.nested");

    REQUIRE(f.tensors().size() == 3);
    CHECK(f.data_offset() % alignment == 0);
    auto padded = [&](uint64_t n) { return (n + alignment - 1) / alignment * alignment; };
    CHECK(f.tensors()[0].offset == 0);
    CHECK(f.tensors()[1].offset == padded(48));
    CHECK(f.tensors()[2].offset == padded(48) + padded(68));
    CHECK(bytes.size() == f.data_offset() + f.tensors()[2].offset + padded(144));
    CHECK(f.tensors()[2].dims == std::vector<uint64_t>{256, 1, 1});
    CHECK(f.tensors()[2].shape() == std::vector<int64_t>{1, 1, 256});
    uint8_t seed = 1;
    for (const TensorInfo& t : f.tensors()) {
      CHECK(std::vector<uint8_t>(t.data.begin(), t.data.end()) == pattern(t.bytes, seed++));
      CHECK(t.data.data() == bytes.data() + f.data_offset() + t.offset);
    }
    // Padding is zeros.
    for (size_t i = f.data_offset() + 48; i < f.data_offset() + f.tensors()[1].offset; ++i) CHECK(bytes[i] == 0);
  }
}

TEST_CASE("gguf: writer byte layout: header fields little-endian, key/value encoding") {
  Writer w;
  w.set_u16("ab", 0x1234);
  std::vector<uint8_t> bytes = w.to_bytes();
  const std::vector<uint8_t> expected = {
      'G', 'G', 'U', 'F', 3, 0, 0, 0,        // magic, version 3
      0, 0, 0, 0, 0, 0, 0, 0,                // 0 tensors
      1, 0, 0, 0, 0, 0, 0, 0,                // 1 key-value
      2, 0, 0, 0, 0, 0, 0, 0, 'a', 'b',      // key "ab"
      2, 0, 0, 0, 0x34, 0x12,                // type u16, value
  };
  REQUIRE(bytes.size() == 64);  // padded to the default alignment 32
  CHECK(std::vector<uint8_t>(bytes.begin(), bytes.begin() + 40) == expected);
  CHECK(File::parse(bytes, "mem").data_offset() == 64);
}

TEST_CASE("gguf: set replaces a key in place, write() then File::open round-trip") {
  Writer w = every_type_writer(32);
  w.set_string("general.architecture", "other");
  const std::string path = (std::filesystem::temp_directory_path() / "moat_gguf_writer_test.gguf").string();
  w.write(path);
  File f = File::open(path);
  CHECK(f.path() == path);
  CHECK(f.metadata()[1].key == "general.architecture");
  CHECK(f.architecture() == "other");
  CHECK(f.find_tensor("c")->bytes == 144);
  CHECK(f.find_tensor("c")->data[0] == 3);  // read through the mapping
  std::filesystem::remove(path);
  CHECK_THROWS_AS(w.write("/nonexistent-dir/x.gguf"), moat::UserError);
  CHECK_THROWS_AS(File::open("/nonexistent-dir/x.gguf"), moat::UserError);
}

namespace {
// The libFuzzer seed corpus: small valid files that cover every value type, several
// alignments and tensor types, and a metadata-only file.
std::vector<std::pair<std::string, std::vector<uint8_t>>> seed_files() {
  std::vector<std::pair<std::string, std::vector<uint8_t>>> out;
  out.emplace_back("every_type.gguf", every_type_writer(32).to_bytes());
  Writer aligned;
  aligned.set_alignment(64);
  aligned.set_string("general.architecture", "deepseek2");
  aligned.set_u32("deepseek2.block_count", 1);
  aligned.add_tensor("blk.0.attn_norm.weight", GgmlType::F32, {8}, pattern(32, 4));
  aligned.add_tensor("blk.0.ffn_down.weight", GgmlType::Q6_K, {256, 2}, pattern(420, 5));
  aligned.add_tensor("output.weight", GgmlType::BF16, {4, 2}, pattern(16, 6));
  out.emplace_back("align64.gguf", aligned.to_bytes());
  Writer vocab;
  vocab.set_string("tokenizer.ggml.model", "gpt2");
  vocab.set_string_array("tokenizer.ggml.tokens", {"!", "\"", "<｜begin▁of▁sentence｜>", "Ġ"});
  vocab.set_i32_array("tokenizer.ggml.token_type", {1, 1, 3, 1});
  vocab.set_u32("tokenizer.ggml.bos_token_id", 2);
  out.emplace_back("vocab_only.gguf", vocab.to_bytes());
  return out;
}
}  // namespace

TEST_CASE("gguf: fuzz seed corpus: tests/fuzz/corpus/gguf holds the writer's current output") {
  // Regenerate with MOAT_UPDATE_GGUF_CORPUS=1 ./gguf_writer_test after changing the writer or the seeds.
  const std::string dir = std::string(MOAT_SOURCE_DIR) + "/tests/fuzz/corpus/gguf/";
  const bool update = std::getenv("MOAT_UPDATE_GGUF_CORPUS") != nullptr;
  for (const auto& seed : seed_files()) {
    const std::string& name = seed.first;  // not a structured binding: clang 14 cannot capture those
    const std::vector<uint8_t>& bytes = seed.second;
    CAPTURE(name);
    if (update) {
      std::FILE* out = std::fopen((dir + name).c_str(), "wb");
      REQUIRE(out);
      CHECK(std::fwrite(bytes.data(), 1, bytes.size(), out) == bytes.size());
      std::fclose(out);
    }
    CHECK(bytes.size() < 4096);
    CHECK_NOTHROW(File::parse(bytes, name));
    CHECK_MESSAGE(moat::testing::read_bytes(dir + name) == bytes,
                  dir, name, " is stale: rerun with MOAT_UPDATE_GGUF_CORPUS=1");
  }
}
