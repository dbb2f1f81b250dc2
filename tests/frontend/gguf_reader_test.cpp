// The GGUF reader against files written by other programs: tiny.gguf (the PyPI gguf
// package, tools/make_test_gguf.py) and the real DeepSeek LLM vocabulary (llama.cpp).
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>

#include "frontend/gguf.h"
#include "frontend/gguf_writer.h"
#include "support/error.h"

using namespace moat::gguf;

namespace {
const std::string kTiny = std::string(MOAT_SOURCE_DIR) + "/tests/data/tiny.gguf";
const std::string kVocab = std::string(MOAT_SOURCE_DIR) + "/../shared/data/vocab/deepseek-llm.gguf";
}  // namespace

TEST_CASE("tiny.gguf: every scalar value type as the gguf package wrote it") {
  File f = File::open(kTiny);
  CHECK(f.version() == 3);
  CHECK(f.alignment() == 32);
  CHECK(f.architecture() == "deepseek2");
  CHECK(f.get_string("general.name") == "tiny-test");
  CHECK(f.find("test.u8")->type == ValueType::u8);
  CHECK(f.get_u64("test.u8") == 200);
  CHECK(f.find("test.i8")->i == -100);
  CHECK(f.get_u64("test.u16") == 60000);
  CHECK(f.find("test.i16")->i == -30000);
  CHECK(f.get_u64("test.u32") == 4000000000u);
  CHECK(f.find("test.i32")->i == -2000000000);
  CHECK(f.get_f64("test.f32") == 0.15625);
  CHECK(f.get_bool("test.bool") == true);
  CHECK(f.get_string("test.string") == "héllo ｜world｜");
  CHECK(f.get_u64("test.u64") == (uint64_t{1} << 63) + 5);
  CHECK(f.find("test.i64")->i == -(int64_t{1} << 62));
  CHECK(f.get_f64("test.f64") == 2.718281828459045);
  CHECK_THROWS_WITH_AS(f.get_u64("test.string"), (kTiny + ": metadata key test.string is string, expected a non-negative integer").c_str(),
                       moat::UserError);
  CHECK_THROWS_AS(f.get_u64("test.i8"), moat::UserError);  // negative
  CHECK_THROWS_WITH_AS(f.get_string("no.such.key"), (kTiny + ": metadata key no.such.key is missing").c_str(),
                       moat::UserError);
  CHECK(!f.find_u64("no.such.key").has_value());
}

TEST_CASE("tiny.gguf: arrays, nested arrays") {
  File f = File::open(kTiny);
  const Value* strings = f.find("test.strings");
  REQUIRE(strings);
  CHECK(strings->elem_type == ValueType::string);
  REQUIRE(strings->array.size() == 4);
  CHECK(strings->array[1].str == "bc");
  CHECK(strings->array[2].str.empty());
  CHECK(strings->array[3].str == "日本");
  const Value* ints = f.find("test.i32s");
  REQUIRE(ints);
  REQUIRE(ints->array.size() == 3);
  CHECK(ints->array[1].i == -2);
  const Value* nested = f.find("test.nested");
  REQUIRE(nested);
  CHECK(nested->elem_type == ValueType::array);
  REQUIRE(nested->array.size() == 2);
  CHECK(nested->array[0].array.size() == 2);
  CHECK(nested->array[0].array[1].i == 2);
  CHECK(nested->array[1].array[0].i == 3);
}

TEST_CASE("tiny.gguf: tensor infos, offsets and data") {
  File f = File::open(kTiny);
  REQUIRE(f.tensors().size() == 5);
  const TensorInfo* t = f.find_tensor("blk.0.f32");
  REQUIRE(t);
  CHECK(t->type == GgmlType::F32);
  CHECK(t->dims == std::vector<uint64_t>{4, 3});
  CHECK(t->shape() == std::vector<int64_t>{3, 4});
  CHECK(t->bytes == 48);
  float values[12];
  std::memcpy(values, t->data.data(), sizeof values);
  for (int i = 0; i < 12; ++i) CHECK(values[i] == i * 0.5f - 1.0f);
  const TensorInfo* q8 = f.find_tensor("blk.0.q8_0");
  REQUIRE(q8);
  CHECK(q8->type == GgmlType::Q8_0);
  CHECK(q8->bytes == 2 * 2 * 34);
  CHECK(to_ir_dtype(q8->type) == moat::ir::DType::q8_0);
  CHECK(f.find_tensor("blk.0.q4_0")->bytes == 2 * 2 * 18);
  for (const TensorInfo& info : f.tensors()) {
    CHECK(info.offset % f.alignment() == 0);
    CHECK(info.data.data() == f.tensors().front().data.data() - f.tensors().front().offset + info.offset);
  }
  CHECK(f.find_tensor("nope") == nullptr);
}

TEST_CASE("the real DeepSeek LLM vocabulary file written by llama.cpp") {
  if (!std::filesystem::exists(kVocab)) {
    MESSAGE("skipped: " << kVocab << " is absent (shared test data)");
    return;
  }
  File f = File::open(kVocab);
  CHECK(f.version() == 3);
  CHECK(f.get_string("tokenizer.ggml.pre") == "deepseek-llm");
  CHECK(f.get_string("tokenizer.ggml.model") == "gpt2");
  const Value* tokens = f.find("tokenizer.ggml.tokens");
  REQUIRE(tokens);
  CHECK(tokens->elem_type == ValueType::string);
  CHECK(tokens->array.size() == 102400);
  CHECK(f.find("tokenizer.ggml.merges")->array.size() == 99757);
  CHECK(f.get_u64("tokenizer.ggml.bos_token_id") == 100000);
  CHECK(f.tensors().empty());
}

TEST_CASE("ggml type table: block sizes of the types DeepSeek files use") {
  CHECK(ggml_block_elems(GgmlType::Q4_K) == 256);
  CHECK(ggml_block_bytes(GgmlType::Q4_K) == 144);
  CHECK(ggml_block_bytes(GgmlType::Q6_K) == 210);
  CHECK(ggml_block_bytes(GgmlType::Q8_0) == 34);
  CHECK(ggml_block_bytes(GgmlType::Q4_0) == 18);
  CHECK(ggml_block_bytes(GgmlType::BF16) == 2);
  CHECK(ggml_type_name(GgmlType::IQ4_XS) == "IQ4_XS");
  CHECK(!ggml_type_name_of(4).has_value());  // removed Q4_2
  CHECK(!to_ir_dtype(GgmlType::Q5_K).has_value());
}
