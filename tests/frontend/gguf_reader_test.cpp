// The GGUF reader against files written by other programs: tiny.gguf (the PyPI gguf
// package, tools/make_test_gguf.py) and the real DeepSeek LLM vocabulary (llama.cpp).
#include <doctest/doctest.h>

#include <cstring>
#include <filesystem>

#include "frontend/gguf.h"
#include "frontend/gguf_writer.h"
#include "support/error.h"
#include "support/half.h"

using namespace moat::gguf;

namespace {
const std::string kTiny = std::string(MOAT_SOURCE_DIR) + "/tests/data/tiny.gguf";
const std::string kVocab = std::string(MOAT_SOURCE_DIR) + "/../shared/data/vocab/deepseek-llm.gguf";
}  // namespace

TEST_CASE("gguf: tiny.gguf: every scalar value type as the gguf package wrote it") {
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
  CHECK(f.get_i64("test.i8") == -100);
  CHECK(f.get_i64("test.u32") == 4000000000);
  CHECK_THROWS_WITH_AS(f.get_i64("test.u64"),
                       (kTiny + ": metadata key test.u64 is 9223372036854775813, too large for a signed 64-bit integer").c_str(),
                       moat::UserError);
  CHECK_THROWS_WITH_AS(f.get_u64("test.i8"), (kTiny + ": metadata key test.i8 is -100, expected a non-negative integer").c_str(),
                       moat::UserError);
  CHECK_THROWS_WITH_AS(f.get_bool("test.u8"), (kTiny + ": metadata key test.u8 is u8, expected a bool").c_str(),
                       moat::UserError);
  CHECK_THROWS_WITH_AS(f.get_string("test.strings"), (kTiny + ": metadata key test.strings is array, expected a string").c_str(),
                       moat::UserError);
  CHECK(f.get_f64("test.i16") == -30000.0);  // integers widen to f64
  CHECK(f.metadata().size() == 17);
  CHECK(f.metadata()[0].key == "general.architecture");  // file order
  CHECK(f.metadata()[16].key == "test.nested");
}

TEST_CASE("gguf: Value's typed getters name the context and the types") {
  File f = File::open(kTiny);
  const Value& strings = *f.find("test.strings");
  CHECK(strings.as_array(ValueType::string, "k").size() == 4);
  CHECK_THROWS_WITH_AS(strings.as_array(ValueType::i32, "ctx"), "ctx is an array of string, expected an array of i32",
                       moat::UserError);
  CHECK_THROWS_WITH_AS(f.find("test.f32")->as_array(ValueType::f32, "ctx"), "ctx is f32, expected an array of f32",
                       moat::UserError);
  CHECK(f.find("test.string")->as_string("ctx") == "héllo ｜world｜");
  CHECK_THROWS_WITH_AS(f.find("test.f64")->as_u64("ctx"), "ctx is f64, expected a non-negative integer", moat::UserError);
  CHECK(f.find("test.bool")->as_bool("ctx"));
  CHECK(f.find("test.f32")->as_f64("ctx") == 0.15625);
  CHECK(value_type_name(ValueType::boolean) == "bool");
  CHECK(value_type_name(ValueType::array) == "array");
  CHECK(value_type_name(static_cast<ValueType>(13)) == "unknown");
}

TEST_CASE("gguf: tiny.gguf: arrays, nested arrays") {
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

TEST_CASE("gguf: tiny.gguf: tensor infos, offsets and data") {
  File f = File::open(kTiny);
  REQUIRE(f.tensors().size() == 5);
  const TensorInfo* t = f.find_tensor("blk.0.f32");
  REQUIRE(t);
  CHECK(t->type == GgmlType::F32);
  CHECK(t->dims == std::vector<uint64_t>{4, 3});
  CHECK(t->shape() == std::vector<int64_t>{3, 4});
  CHECK(t->bytes == 48);
  CHECK(f.data_offset() == 896);  // gguf-py: end of the tensor infos, padded to 32
  // gguf-py packs tensors in order, each padded to 32 bytes.
  std::vector<uint64_t> offsets;
  for (const TensorInfo& info : f.tensors()) offsets.push_back(info.offset);
  CHECK(offsets == std::vector<uint64_t>{0, 64, 96, 256, 352});
  float values[12];
  std::memcpy(values, t->data.data(), sizeof values);
  for (int i = 0; i < 12; ++i) CHECK(values[i] == i * 0.5f - 1.0f);
  const TensorInfo* q8 = f.find_tensor("blk.0.q8_0");
  REQUIRE(q8);
  CHECK(q8->type == GgmlType::Q8_0);
  CHECK(q8->bytes == 2 * 2 * 34);
  CHECK(to_ir_dtype(q8->type) == moat::ir::DType::q8_0);
  // Q8_0 block 0 of linspace(-1, 1, 128): d = f16(1/127) = 0x2008, qs = round(x / d) = -127, -125, ...
  CHECK(q8->data[0] == 0x08);
  CHECK(q8->data[1] == 0x20);
  CHECK(static_cast<int8_t>(q8->data[2]) == -127);
  CHECK(static_cast<int8_t>(q8->data[3]) == -125);
  CHECK(static_cast<int8_t>(q8->data[135]) == 127);  // last element of the last block: 1.0
  CHECK(f.find_tensor("blk.0.q4_0")->bytes == 2 * 2 * 18);
  CHECK(f.find_tensor("blk.0.q4_0")->dims == std::vector<uint64_t>{64, 2});
  const TensorInfo* f16 = f.find_tensor("blk.0.f16");
  REQUIRE(f16);
  CHECK(f16->type == GgmlType::F16);
  CHECK(f16->shape() == std::vector<int64_t>{2, 4});
  REQUIRE(f16->bytes == 16);
  for (int i = 0; i < 8; ++i) {
    uint16_t h = static_cast<uint16_t>(f16->data[2 * i] | f16->data[2 * i + 1] << 8);
    CHECK(moat::f16_to_f32(h) == i / 4.0f);
  }
  const TensorInfo* embd = f.find_tensor("token_embd.weight");
  REQUIRE(embd);
  CHECK(embd->dims == std::vector<uint64_t>{32, 5});
  CHECK(embd->data.size() == 640);
  for (const TensorInfo& info : f.tensors()) {
    CHECK(info.offset % f.alignment() == 0);
    CHECK(info.data.data() == f.tensors().front().data.data() - f.tensors().front().offset + info.offset);
  }
  CHECK(f.find_tensor("nope") == nullptr);
}

TEST_CASE("gguf: the real DeepSeek LLM vocabulary file written by llama.cpp") {
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
  CHECK(tokens->array[0].str == "!");
  CHECK(tokens->array[100000].str == "<｜begin▁of▁sentence｜>");
  CHECK(f.find("tokenizer.ggml.merges")->array[0].str == "Ġ Ġ");
  CHECK(f.find("tokenizer.ggml.token_type")->elem_type == ValueType::i32);
  CHECK(f.alignment() == 32);
  // No tensors: the file ends right after the key-values, without the final padding.
  CHECK(f.data_offset() == std::filesystem::file_size(kVocab));
}

TEST_CASE("gguf: ggml type table: block sizes of the types DeepSeek files use") {
  CHECK(ggml_block_elems(GgmlType::Q4_K) == 256);
  CHECK(ggml_block_bytes(GgmlType::Q4_K) == 144);
  CHECK(ggml_block_bytes(GgmlType::Q6_K) == 210);
  CHECK(ggml_block_bytes(GgmlType::Q8_0) == 34);
  CHECK(ggml_block_bytes(GgmlType::Q4_0) == 18);
  CHECK(ggml_block_bytes(GgmlType::BF16) == 2);
  CHECK(ggml_type_name(GgmlType::IQ4_XS) == "IQ4_XS");
  CHECK(!ggml_type_name_of(4).has_value());  // removed Q4_2
  CHECK(!to_ir_dtype(GgmlType::TQ1_0).has_value());
  CHECK(ggml_block_elems(GgmlType::MXFP4) == 32);
  CHECK(ggml_block_bytes(GgmlType::MXFP4) == 17);
  CHECK(ggml_block_bytes(GgmlType::TQ1_0) == 54);
  CHECK(ggml_block_bytes(GgmlType::IQ1_M) == 56);
  // Every ggml type that maps to an IR dtype has the same block geometry there.
  for (uint32_t id = 0; id < 64; ++id) {
    if (!ggml_type_name_of(id)) continue;
    auto type = static_cast<GgmlType>(id);
    CHECK(ggml_block_elems(type) > 0);
    CHECK(ggml_block_bytes(type) > 0);
    if (auto dtype = to_ir_dtype(type)) {
      CHECK(moat::ir::dtype_block_elems(*dtype) == ggml_block_elems(type));
      CHECK(moat::ir::dtype_block_bytes(*dtype) == ggml_block_bytes(type));
    }
  }
}
