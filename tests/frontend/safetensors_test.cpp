#include <doctest/doctest.h>
#include <stdlib.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "frontend/safetensors.h"
#include "support/error.h"

using namespace moat::safetensors;
namespace fs = std::filesystem;

namespace {

const std::string kTiny = MOAT_SOURCE_DIR "/tests/data/hf_tiny";
const std::string kShard1 = kTiny + "/model-00001-of-00002.safetensors";
const std::string kShard2 = kTiny + "/model-00002-of-00002.safetensors";

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  REQUIRE(in);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_text(const fs::path& path, const std::string& text) { std::ofstream(path) << text; }

// A fresh folder under the system temp directory, removed at scope exit.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string pattern = (fs::temp_directory_path() / "moat_st_XXXXXX").string();
    REQUIRE(mkdtemp(pattern.data()) != nullptr);
    path = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

// A safetensors image: 8-byte length, `header` as is, then `data_size` zero bytes.
std::vector<uint8_t> make_file(const std::string& header, size_t data_size, uint64_t length_override = 0) {
  uint64_t n = length_override ? length_override : header.size();
  std::vector<uint8_t> bytes(8);
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<uint8_t>(n >> (8 * i));
  bytes.insert(bytes.end(), header.begin(), header.end());
  bytes.resize(bytes.size() + data_size, 0);
  return bytes;
}

// The message of the UserError that parsing `bytes` throws ("" when it parses).
std::string parse_error(const std::vector<uint8_t>& bytes) {
  try {
    File::parse(bytes, "crafted.safetensors");
  } catch (const moat::UserError& e) {
    return e.what();
  }
  return "";
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

template <class T>
T element(const TensorInfo& t, size_t i) {
  REQUIRE((i + 1) * sizeof(T) <= t.data.size());
  T v;
  std::memcpy(&v, t.data.data() + i * sizeof(T), sizeof(T));
  return v;
}

float bf16_value(const TensorInfo& t, size_t i) {
  uint32_t bits = uint32_t{element<uint16_t>(t, i)} << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace

TEST_CASE("safetensors dtype table follows the format's names and sizes") {
  CHECK(dtype_name(DType::F8_E4M3) == "F8_E4M3");
  CHECK(parse_dtype("BF16") == DType::BF16);
  CHECK(!parse_dtype("bf16").has_value());
  CHECK(!parse_dtype("F4").has_value());
  CHECK(dtype_bytes(DType::F64) == 8);
  CHECK(dtype_bytes(DType::I16) == 2);
  CHECK(dtype_bytes(DType::F8_E5M2) == 1);
  CHECK(to_ir_dtype(DType::F8_E4M3) == moat::ir::DType::f8_e4m3);
  CHECK(to_ir_dtype(DType::BOOL) == moat::ir::DType::boolean);
  CHECK(to_ir_dtype(DType::U8) == moat::ir::DType::u8);
  CHECK(!to_ir_dtype(DType::F64).has_value());
  CHECK(!to_ir_dtype(DType::I16).has_value());
}

TEST_CASE("the sharded hf_tiny folder reads back what tools/make_test_safetensors.py wrote") {
  Model model = Model::open(kTiny);
  REQUIRE(model.tensors().size() == 10);
  REQUIRE(model.shard_paths().size() == 2);
  for (size_t i = 1; i < model.tensors().size(); ++i)
    CHECK(model.tensors()[i - 1].name < model.tensors()[i].name);
  CHECK(model.find("no.such.tensor") == nullptr);

  // total_bytes agrees with the index's own metadata.total_size.
  nlohmann::json index = nlohmann::json::parse(read_bytes(kTiny + "/model.safetensors.index.json"));
  CHECK(model.total_bytes() == index["metadata"]["total_size"].get<uint64_t>());

  const TensorInfo* embed = model.find("model.embed_tokens.weight");
  REQUIRE(embed);
  CHECK(embed->dtype == DType::BF16);
  CHECK(embed->shape == std::vector<int64_t>{32, 16});
  CHECK(embed->elements() == 512);
  CHECK(embed->nbytes() == 1024);
  CHECK(embed->data[0] == 0x80);  // -4.0 = 0xc080, little-endian
  CHECK(embed->data[1] == 0xc0);
  CHECK(bf16_value(*embed, 1) == doctest::Approx(-4.0 + 1.0 / 64));
  CHECK(bf16_value(*embed, 511) == doctest::Approx(255.0 / 64));
  CHECK(fs::path(embed->file).filename() == "model-00001-of-00002.safetensors");

  const TensorInfo* norm = model.find("model.layers.0.input_layernorm.weight");
  REQUIRE(norm);
  CHECK(norm->dtype == DType::F32);
  CHECK(element<float>(*norm, 0) == 1.0f);
  CHECK(element<float>(*norm, 15) == 1.0f + 15.0f / 16);

  const TensorInfo* q = model.find("model.layers.0.self_attn.q_a_proj.weight");
  REQUIRE(q);
  CHECK(q->dtype == DType::F8_E4M3);
  CHECK(q->shape == std::vector<int64_t>{8, 16});
  const uint8_t fp8[4] = {0x38, 0x40, 0xb8, 0x30};  // 1.0, 2.0, -1.0, 0.5
  for (size_t i = 0; i < 128; ++i) CHECK(q->data[i] == fp8[i % 4]);
  const TensorInfo* scale = model.find("model.layers.0.self_attn.q_a_proj.weight_scale_inv");
  REQUIRE(scale);
  CHECK(scale->shape == std::vector<int64_t>{1, 1});
  CHECK(element<float>(*scale, 0) == 0.25f);

  const TensorInfo* gate = model.find("model.layers.1.mlp.gate.weight");
  REQUIRE(gate);
  CHECK(gate->dtype == DType::F16);
  CHECK(element<uint16_t>(*gate, 1) == 0x3800);  // 0.5
  CHECK(element<uint16_t>(*gate, 3) == 0x3e00);  // 1.5
  CHECK(fs::path(gate->file).filename() == "model-00002-of-00002.safetensors");

  const TensorInfo* i32 = model.find("extra.i32");
  REQUIRE(i32);
  CHECK(i32->dtype == DType::I32);
  for (int i = 0; i < 8; ++i) CHECK(element<int32_t>(*i32, i) == i - 3);
  const TensorInfo* i64 = model.find("extra.i64");
  REQUIRE(i64);
  CHECK(element<int64_t>(*i64, 0) == (int64_t{1} << 40));
  CHECK(element<int64_t>(*i64, 1) == -1);
  const TensorInfo* u8 = model.find("extra.u8");
  REQUIRE(u8);
  CHECK(u8->shape == std::vector<int64_t>{5, 5});
  CHECK(u8->data[24] == 240);
  const TensorInfo* empty = model.find("extra.empty");
  REQUIRE(empty);
  CHECK(empty->shape == std::vector<int64_t>{0, 3});
  CHECK(empty->nbytes() == 0);
}

TEST_CASE("one shard, the index path itself, and folders without an index") {
  File shard = File::open(kShard2);
  CHECK(shard.tensors().size() == 6);
  CHECK(shard.metadata().at("format") == "pt");
  for (size_t i = 1; i < shard.tensors().size(); ++i) CHECK(shard.tensors()[i - 1].begin <= shard.tensors()[i].begin);
  CHECK(shard.find("extra.u8") != nullptr);
  CHECK(shard.find("model.embed_tokens.weight") == nullptr);

  Model single = Model::open(kShard2);
  CHECK(single.tensors().size() == 6);
  CHECK(single.shard_paths() == std::vector<std::string>{kShard2});

  Model via_index = Model::open(kTiny + "/model.safetensors.index.json");
  CHECK(via_index.tensors().size() == 10);

  TempDir dir;
  fs::copy_file(kShard1, dir.path / "a.safetensors");
  fs::copy_file(kShard2, dir.path / "b.safetensors");
  Model globbed = Model::open(dir.path.string());
  CHECK(globbed.tensors().size() == 10);
  CHECK(globbed.shard_paths().size() == 2);

  fs::copy_file(kShard1, dir.path / "model.safetensors");
  Model preferred = Model::open(dir.path.string());  // model.safetensors wins over the glob
  CHECK(preferred.tensors().size() == 4);

  TempDir dup;
  fs::copy_file(kShard1, dup.path / "a.safetensors");
  fs::copy_file(kShard1, dup.path / "b.safetensors");
  CHECK_THROWS_WITH_AS(Model::open(dup.path.string()), doctest::Contains("is also in"), moat::UserError);

  TempDir none;
  CHECK_THROWS_WITH_AS(Model::open(none.path.string()), doctest::Contains("no .safetensors files"),
                       moat::UserError);
  CHECK_THROWS_AS(Model::open(kTiny + "/missing.safetensors"), moat::UserError);
}

TEST_CASE("truncation at every offset is a UserError") {
  std::vector<uint8_t> bytes = read_bytes(kShard2);
  REQUIRE(File::parse(bytes, "whole").tensors().size() == 6);
  int thrown = 0;
  for (size_t size = 0; size < bytes.size(); ++size) {
    std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<ptrdiff_t>(size));
    std::string message = parse_error(cut);  // any other exception type escapes and fails the test
    if (!message.empty()) ++thrown;
    CHECK(message.rfind("crafted.safetensors: ", 0) == 0);
  }
  CHECK(thrown == static_cast<int>(bytes.size()));
}

TEST_CASE("byte flips in the header and its length give a UserError or a consistent file") {
  std::vector<uint8_t> bytes = read_bytes(kShard1);
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | bytes[i];
  REQUIRE(header_size < bytes.size());
  int rejected = 0, accepted = 0;
  for (size_t pos = 0; pos < 8 + header_size; ++pos) {
    for (uint8_t mask : {0x01, 0x08, 0x20, 0x80, 0xff}) {
      std::vector<uint8_t> flipped = bytes;
      flipped[pos] ^= mask;
      try {
        File file = File::parse(flipped, "flipped");
        ++accepted;
        for (const TensorInfo& t : file.tensors()) {  // whatever parsed lies inside the image
          CHECK(t.data.data() >= flipped.data());
          CHECK(t.data.data() + t.data.size() <= flipped.data() + flipped.size());
          CHECK(t.nbytes() == static_cast<uint64_t>(t.elements()) * dtype_bytes(t.dtype));
        }
      } catch (const moat::UserError&) {
        ++rejected;
      }
    }
  }
  CHECK(rejected > 0);
  CHECK(accepted > 0);  // e.g. flips inside a tensor name
}

TEST_CASE("malicious headers are rejected with the file, tensor and field named") {
  const std::string ok = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";
  CHECK(parse_error(make_file(ok, 8)).empty());
  CHECK(File::parse(make_file(ok, 8), "x").find("a")->shape == std::vector<int64_t>{2});

  CHECK(contains(parse_error(std::vector<uint8_t>{1, 2, 3}), "too short"));
  CHECK(contains(parse_error(make_file(ok, 8, uint64_t{1} << 63)), "header length at byte 0"));
  CHECK(contains(parse_error(make_file(ok, 8, (100ull << 20) + 1)), "over the"));
  CHECK(contains(parse_error(make_file(ok, 8, ok.size() + 9)), "truncated"));
  CHECK(contains(parse_error(make_file("{\"a\":", 0)), "not valid JSON"));
  CHECK(contains(parse_error(make_file("[1,2]", 0)), "must be a JSON object"));

  std::string e = parse_error(make_file(R"({"w":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", 1));
  CHECK(e.rfind("crafted.safetensors: tensor \"w\"", 0) == 0);
  CHECK(contains(e, "unknown dtype \"F4\""));

  CHECK(contains(parse_error(make_file(R"({"w":{"dtype":"F32","shape":[-1],"data_offsets":[0,0]}})", 0)),
                 "field \"shape\" element 0 must be a non-negative integer"));
  CHECK(contains(parse_error(make_file(R"({"w":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}})", 4)),
                 "field \"shape\""));
  CHECK(contains(parse_error(make_file(R"({"w":{"dtype":"F32","shape":"2","data_offsets":[0,8]}})", 8)),
                 "field \"shape\" must be an array"));
  CHECK(contains(parse_error(make_file(
                     R"({"w":{"dtype":"F32","shape":[4611686018427387904,4611686018427387904],"data_offsets":[0,0]}})",
                     0)),
                 "more elements than fit"));
  CHECK(contains(parse_error(make_file(
                     R"({"w":{"dtype":"F64","shape":[4611686018427387904],"data_offsets":[0,0]}})", 0)),
                 "overflows"));
  CHECK(contains(parse_error(make_file(
                     R"({"w":{"dtype":"F32","shape":[1099511627776],"data_offsets":[0,4398046511104]}})", 16)),
                 "run past the end of the data section"));
  CHECK(contains(parse_error(make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[8,4]}})", 8)),
                 "end before they begin"));
  CHECK(contains(parse_error(make_file(R"({"w":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", 8)),
                 "needs 12"));
  CHECK(contains(parse_error(make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4,8]}})", 8)),
                 "field \"data_offsets\""));
  CHECK(contains(parse_error(make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}})", 8)),
                 "field \"data_offsets\""));
  CHECK(contains(parse_error(make_file(R"({"w":{"dtype":"F32","shape":[1]}})", 8)),
                 "missing field \"data_offsets\""));
  CHECK(contains(parse_error(make_file(R"({"w":{"dtype":7,"shape":[1],"data_offsets":[0,4]}})", 8)),
                 "field \"dtype\" must be a string"));
  CHECK(contains(parse_error(make_file(R"({"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4],"x":1}})", 8)),
                 "unexpected field \"x\""));
  CHECK(contains(parse_error(make_file(R"({"w":[1,2]})", 8)), "tensor \"w\": expected an object"));
  CHECK(contains(parse_error(make_file(R"({"__metadata__":{"k":1}})", 0)), "\"__metadata__\" field \"k\""));
  CHECK(contains(parse_error(make_file(R"({"__metadata__":[]})", 0)), "\"__metadata__\" must be an object"));

  std::string overlap = parse_error(make_file(
      R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
      12));
  CHECK(contains(overlap, "tensor \"b\" (data_offsets [4, 12]) overlaps tensor \"a\""));
  CHECK(contains(parse_error(make_file(
                     R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[2],"data_offsets":[2,4]}})",
                     8)),
                 "overlaps"));
  // Empty tensors own no bytes; holes between tensors are allowed.
  CHECK(parse_error(make_file(
                        R"({"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]},"b":{"dtype":"U8","shape":[0],"data_offsets":[8,8]},"c":{"dtype":"U8","shape":[2],"data_offsets":[10,12]}})",
                        12))
            .empty());
}

TEST_CASE("an index may not reach outside its folder, and every tensor it names must exist") {
  TempDir dir;
  fs::copy_file(kShard1, dir.path / "model-00001-of-00002.safetensors");
  auto index_with = [&](const std::string& shard) {
    nlohmann::json index = {{"weight_map", {{"model.embed_tokens.weight", shard}}}};
    write_text(dir.path / "model.safetensors.index.json", index.dump());
    return (dir.path / "model.safetensors.index.json").string();
  };
  CHECK(Model::open(index_with("model-00001-of-00002.safetensors")).tensors().size() == 1);
  for (std::string bad : {"../model-00001-of-00002.safetensors", "/etc/passwd", "sub/x.safetensors", "..", ".",
                          "", "a\\b.safetensors"}) {
    CAPTURE(bad);
    CHECK_THROWS_WITH_AS(Model::open(index_with(bad)), doctest::Contains("not a plain file name"), moat::UserError);
  }
  CHECK_THROWS_AS(Model::open(index_with("absent.safetensors")), moat::UserError);

  nlohmann::json missing = {{"weight_map", {{"not.in.shard", "model-00001-of-00002.safetensors"}}}};
  write_text(dir.path / "model.safetensors.index.json", missing.dump());
  CHECK_THROWS_WITH_AS(Model::open(dir.path.string()), doctest::Contains("\"not.in.shard\" is listed in"),
                       moat::UserError);

  write_text(dir.path / "model.safetensors.index.json", R"({"weight_map": {"a": 3}})");
  CHECK_THROWS_WITH_AS(Model::open(dir.path.string()), doctest::Contains("must be a file name string"),
                       moat::UserError);
  write_text(dir.path / "model.safetensors.index.json", R"({"weight_map": )");
  CHECK_THROWS_WITH_AS(Model::open(dir.path.string()), doctest::Contains("not valid JSON"), moat::UserError);
  write_text(dir.path / "model.safetensors.index.json", R"({"weights": {}})");
  CHECK_THROWS_WITH_AS(Model::open(dir.path.string()), doctest::Contains("\"weight_map\""), moat::UserError);
}
