// Byte-level BPE tokenizers: the real DeepSeek LLM vocabulary against llama.cpp's test
// vectors, the pre-tokenizers against the Hugging Face tokenizers package (committed
// vectors made by tools/make_tokenizer_vectors.py), decoding and streaming.
#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <set>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "frontend/gguf.h"
#include "frontend/gguf_writer.h"
#include "frontend/tokenizer/byte_level.h"
#include "frontend/tokenizer/pre_tokenizer.h"
#include "frontend/tokenizer/tokenizer.h"
#include "frontend/tokenizer/utf8.h"
#include "support/error.h"

namespace {

using moat::tok::Tokenizer;

const std::string kVocabDir = std::string(MOAT_SOURCE_DIR) + "/../shared/data/vocab/";
const std::string kVectors = std::string(MOAT_SOURCE_DIR) + "/tests/data/tokenizer/";

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// llama.cpp's .inp format: inputs, each followed by "\n__ggml_vocab_test__\n".
std::vector<std::string> read_inputs(const std::string& path) {
  const std::string text = read_file(path);
  const std::string sep = "\n__ggml_vocab_test__\n";
  std::vector<std::string> out;
  size_t start = 0;
  for (size_t at = text.find(sep); at != std::string::npos; at = text.find(sep, start)) {
    out.push_back(text.substr(start, at - start));
    start = at + sep.size();
  }
  return out;
}

std::vector<std::vector<int32_t>> read_outputs(const std::string& path) {
  std::istringstream in(read_file(path));
  std::vector<std::vector<int32_t>> out;
  for (std::string line; std::getline(in, line);) {
    std::istringstream words(line);
    out.emplace_back();
    for (int32_t id; words >> id;) out.back().push_back(id);
  }
  return out;
}

bool valid_utf8(std::string_view s) {
  for (size_t pos = 0; pos < s.size();) {
    const size_t n = moat::tok::utf8_valid_length(s, pos);
    if (n == 0) return false;
    pos += n;
  }
  return true;
}

// A small byte-level vocabulary: the 256 byte characters (ids 0..255), then "ab" (256),
// "abc" (257), control tokens "<s>" (258) and "</s>" (259), user-defined "<tool>" (260).
moat::gguf::Writer tiny_vocab(const std::string& pre) {
  moat::gguf::Writer w;
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", pre);
  std::vector<std::string> tokens;
  std::vector<int32_t> types;
  for (int b = 0; b < 256; ++b) {
    tokens.push_back(moat::tok::bytes_to_byte_level(std::string(1, static_cast<char>(b))));
    types.push_back(1);
  }
  for (const char* t : {"ab", "abc"}) tokens.push_back(t), types.push_back(1);
  tokens.push_back("<s>"), types.push_back(3);
  tokens.push_back("</s>"), types.push_back(3);
  tokens.push_back("<tool>"), types.push_back(4);
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_string_array("tokenizer.ggml.merges", {"a b", "ab c"});
  w.set_u32("tokenizer.ggml.bos_token_id", 258);
  w.set_u32("tokenizer.ggml.eos_token_id", 259);
  return w;
}

Tokenizer tiny_tokenizer(const moat::gguf::Writer& w) {
  const std::vector<uint8_t> bytes = w.to_bytes();
  return Tokenizer::from_gguf(moat::gguf::File::parse(bytes, "tiny-vocab.gguf"));
}

}  // namespace

TEST_CASE("deepseek-llm: every .inp input gives the ids of its .out line") {
  const std::string gguf = kVocabDir + "deepseek-llm.gguf";
  if (!std::filesystem::exists(gguf)) {
    MESSAGE("skipped: " << gguf << " is absent (shared test data, see ../shared/data/README.md)");
    return;
  }
  const Tokenizer tok = Tokenizer::from_gguf(moat::gguf::File::open(gguf));
  CHECK(tok.vocab_size() == 102400);
  const std::vector<std::string> inputs = read_inputs(gguf + ".inp");
  const std::vector<std::vector<int32_t>> outputs = read_outputs(gguf + ".out");
  REQUIRE(inputs.size() == outputs.size());
  REQUIRE(inputs.size() >= 40);
  size_t matched = 0;
  for (size_t i = 0; i < inputs.size(); ++i) {
    INFO("input ", i, ": '", inputs[i], "'");
    const std::vector<int32_t> ids = tok.encode(inputs[i], false);
    CHECK(ids == outputs[i]);
    matched += ids == outputs[i];
    CHECK(tok.decode(ids) == inputs[i]);
  }
  MESSAGE(matched << " of " << inputs.size() << " inputs match llama.cpp's ids");
}

TEST_CASE("llama.cpp's default pre-tokenizer: the DeepSeek LLM vocabulary with pre 'default' gives llama.cpp's ids") {
  const std::string gguf = kVocabDir + "deepseek-llm.gguf";
  if (!std::filesystem::exists(gguf)) {
    MESSAGE("skipped: " << gguf << " is absent (shared test data, see ../shared/data/README.md)");
    return;
  }
  // The vocabulary as an older converter writes it: every key the same but the pre-tokenizer.
  const moat::gguf::File file = moat::gguf::File::open(gguf);
  moat::gguf::Writer w;
  for (const moat::gguf::KeyValue& kv : file.metadata())
    if (kv.key != "tokenizer.ggml.pre") w.set(kv.key, kv.value);
  w.set_string("tokenizer.ggml.pre", "default");
  const Tokenizer tok = tiny_tokenizer(w);
  const nlohmann::json doc = nlohmann::json::parse(read_file(kVectors + "default_llamacpp.json"));
  int cases = 0;
  for (const nlohmann::json& c : doc.at("cases")) {
    const std::string text = c.at("text").get<std::string>();
    INFO("'", text, "'");
    CHECK(tok.encode(text, false) == c.at("ids").get<std::vector<int32_t>>());
    ++cases;
  }
  CHECK(cases == 46);
}

TEST_CASE("deepseek-llm: special tokens in text, streaming, empty input") {
  const std::string gguf = kVocabDir + "deepseek-llm.gguf";
  if (!std::filesystem::exists(gguf)) {
    MESSAGE("skipped: " << gguf << " is absent (shared test data, see ../shared/data/README.md)");
    return;
  }
  const Tokenizer tok = Tokenizer::from_gguf(moat::gguf::File::open(gguf));
  REQUIRE(tok.bos() >= 0);
  REQUIRE(tok.eos() >= 0);
  CHECK(tok.add_bos());
  const std::string bos_text = tok.token_text(tok.bos());
  CHECK(tok.token_type(tok.bos()) == moat::tok::TokenType::control);

  // A control token's spelling in the text is that token, not its characters.
  const std::vector<int32_t> plain = tok.encode("Hello", false);
  const std::vector<int32_t> with_bos = tok.encode(bos_text + "Hello", false);
  REQUIRE(with_bos.size() == plain.size() + 1);
  CHECK(with_bos[0] == tok.bos());
  CHECK(std::equal(plain.begin(), plain.end(), with_bos.begin() + 1));
  const std::vector<int32_t> around = tok.encode("a" + tok.token_text(tok.eos()) + "b", false);
  CHECK(std::count(around.begin(), around.end(), tok.eos()) == 1);
  CHECK(tok.decode(around) == "a" + tok.token_text(tok.eos()) + "b");
  CHECK(tok.decode(around, false) == "ab");

  // BOS on request; nothing else for an empty text.
  CHECK(tok.encode("", false).empty());
  CHECK(tok.encode("", true) == std::vector<int32_t>{tok.bos()});
  CHECK(tok.encode("Hello", true)[0] == tok.bos());

  // Streaming: characters of 2, 3 and 4 bytes split across tokens come out whole.
  const std::string text = "Привет, 世界! 🚀🦙 naïve café — ∑ x² ≤ ∞ ☃️ 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 ꙮ";
  const std::vector<int32_t> ids = tok.encode(text, false);
  moat::tok::StreamDecoder stream(tok);
  std::string streamed;
  size_t held_back = 0;
  for (int32_t id : ids) {
    const std::string piece = stream.push(id);
    CHECK(valid_utf8(piece));
    if (!valid_utf8(tok.token_bytes(id))) ++held_back;
    streamed += piece;
  }
  streamed += stream.flush();
  CHECK(streamed == text);
  CHECK(held_back > 0);  // the text does split characters across tokens
  CHECK(stream.flush().empty());
}

TEST_CASE("a tiny GGUF vocabulary: merges, special tokens, BOS, decoding") {
  const Tokenizer tok = tiny_tokenizer(tiny_vocab("gpt-2"));
  CHECK(tok.vocab_size() == 261);
  CHECK(tok.add_bos() == false);  // gpt-2 has no BOS by default
  // "abc" merges twice; " abc" is one word with its space (gpt-2 regex), which does not merge.
  CHECK(tok.encode("abc", false) == std::vector<int32_t>{257});
  CHECK(tok.encode("ab", false) == std::vector<int32_t>{256});
  CHECK(tok.encode("cab", false) == std::vector<int32_t>{'c', 256});
  const int32_t space = tok.encode(" ", false).at(0);
  CHECK(tok.encode("x abc", false) == std::vector<int32_t>{'x', space, 257});
  CHECK(tok.encode("<s>ab</s><tool>", true) == std::vector<int32_t>{258, 258, 256, 259, 260});
  CHECK(tok.decode(std::vector<int32_t>{258, 256, 260}, true) == "<s>ab<tool>");
  CHECK(tok.decode(std::vector<int32_t>{258, 256, 260}, false) == "ab<tool>");
  // Every byte round-trips, including invalid UTF-8 which is read as U+FFFD.
  CHECK(tok.decode(tok.encode("\t\n\x7f \xc3\xa9", false)) == "\t\n\x7f \xc3\xa9");
  CHECK(tok.decode(tok.encode("a\xff", false)) == "a\xef\xbf\xbd");
  CHECK_THROWS_AS(tok.decode(std::vector<int32_t>{261}), moat::UserError);
}

TEST_CASE("unsupported tokenizers are clear errors") {
  try {
    tiny_tokenizer(tiny_vocab("bogus-pre"));
    FAIL("an unknown pre-tokenizer was accepted");
  } catch (const moat::UserError& e) {
    const std::string msg = e.what();
    CHECK(msg.find("tiny-vocab.gguf") != std::string::npos);
    CHECK(msg.find("'bogus-pre'") != std::string::npos);
    CHECK(msg.find("deepseek-llm") != std::string::npos);
    CHECK(msg.find("deepseek-v3") != std::string::npos);
  }
  moat::gguf::Writer spm = tiny_vocab("gpt-2");
  spm.set_string("tokenizer.ggml.model", "llama");
  CHECK_THROWS_WITH_AS(tiny_tokenizer(spm), doctest::Contains("tokenizer.ggml.model is 'llama'"), moat::UserError);
  moat::gguf::Writer no_merges = tiny_vocab("gpt-2");
  no_merges.set_string_array("tokenizer.ggml.merges", {"ab"});
  CHECK_THROWS_WITH_AS(tiny_tokenizer(no_merges), doctest::Contains("tokenizer.ggml.merges[0]"), moat::UserError);
  moat::gguf::Writer bad_bos = tiny_vocab("gpt-2");
  bad_bos.set_u32("tokenizer.ggml.bos_token_id", 9999);
  CHECK_THROWS_WITH_AS(tiny_tokenizer(bad_bos), doctest::Contains("bos_token_id"), moat::UserError);
  moat::gguf::Writer none;
  none.set_string("general.architecture", "deepseek2");
  CHECK_THROWS_WITH_AS(tiny_tokenizer(none), doctest::Contains("tokenizer.ggml.model is missing"), moat::UserError);
  CHECK_THROWS_WITH_AS(moat::tok::PreTokenizer::from_regexes({"(unclosed"}, "x.json"), doctest::Contains("x.json"),
                       moat::UserError);
}

TEST_CASE("every named pre-tokenizer cuts tricky strings as the tokenizers package does") {
  const std::string path = kVectors + "pre_tokenizer_splits.json";
  REQUIRE_MESSAGE(std::filesystem::exists(path), "missing ", path, " (run tools/make_tokenizer_vectors.py)");
  const nlohmann::json doc = nlohmann::json::parse(read_file(path));
  std::set<std::string> covered;
  for (const auto& item : doc.at("splits").items()) {
    const std::string name = item.key();  // not a structured binding: INFO captures it
    const nlohmann::json& cases = item.value();
    const moat::tok::PreTokenizer pre = moat::tok::PreTokenizer::named(name, "test");
    covered.insert(name);
    for (const nlohmann::json& c : cases) {
      const std::string text = c.at("text").get<std::string>();
      std::vector<std::string> expected = c.at("pieces").get<std::vector<std::string>>();
      std::vector<std::string> got;
      for (std::string_view p : pre.split(text)) got.emplace_back(p);
      INFO(name, ": '", text, "'");
      CHECK(got == expected);
    }
  }
  for (const std::string& name : moat::tok::PreTokenizer::supported_names()) CHECK(covered.count(name) == 1);
}

namespace {

// The GGUF a converter would write for a tokenizer.json: tokens by id, added tokens as
// control (special) or user-defined, merges as "LEFT RIGHT", the named pre-tokenizer.
moat::gguf::Writer gguf_from_tokenizer_json(const nlohmann::json& doc, const std::string& pre) {
  std::vector<std::string> tokens(doc.at("model").at("vocab").size() + doc.at("added_tokens").size());
  std::vector<int32_t> types(tokens.size(), 1);
  size_t used = 0;
  for (const auto& [text, id] : doc.at("model").at("vocab").items()) {
    tokens.at(id.get<size_t>()) = text;
    used = std::max(used, id.get<size_t>() + 1);
  }
  for (const nlohmann::json& t : doc.at("added_tokens")) {
    const size_t id = t.at("id").get<size_t>();
    tokens.at(id) = t.at("content").get<std::string>();
    types.at(id) = t.at("special").get<bool>() ? 3 : 4;
    used = std::max(used, id + 1);
  }
  tokens.resize(used);
  types.resize(used);
  std::vector<std::string> merges;
  for (const nlohmann::json& m : doc.at("model").at("merges"))
    merges.push_back(m.is_array() ? m[0].get<std::string>() + " " + m[1].get<std::string>() : m.get<std::string>());
  moat::gguf::Writer w;
  w.set_string("tokenizer.ggml.model", "gpt2");
  w.set_string("tokenizer.ggml.pre", pre);
  w.set_string_array("tokenizer.ggml.tokens", tokens);
  w.set_i32_array("tokenizer.ggml.token_type", types);
  w.set_string_array("tokenizer.ggml.merges", merges);
  return w;
}

}  // namespace

TEST_CASE("every pre-tokenizer, end to end: ids equal the tokenizers package's (GGUF and tokenizer.json)") {
  const std::string path = kVectors + "encode_vectors.json";
  REQUIRE_MESSAGE(std::filesystem::exists(path), "missing ", path, " (run tools/make_tokenizer_vectors.py)");
  const nlohmann::json doc = nlohmann::json::parse(read_file(path));
  std::set<std::string> covered;
  for (const auto& item : doc.at("encode").items()) {
    const std::string name = item.key();  // not a structured binding: INFO captures it
    const nlohmann::json& cases = item.value();
    covered.insert(name);
    const std::string json_path = kVectors + name + ".tokenizer.json";
    const Tokenizer from_json = Tokenizer::from_tokenizer_json(json_path);
    const Tokenizer from_gguf =
        tiny_tokenizer(gguf_from_tokenizer_json(nlohmann::json::parse(read_file(json_path)), name));
    CHECK(from_json.vocab_size() == from_gguf.vocab_size());
    for (const nlohmann::json& c : cases) {
      const std::string text = c.at("text").get<std::string>();
      const std::vector<int32_t> expected = c.at("ids").get<std::vector<int32_t>>();
      INFO(name, ": '", text, "'");
      CHECK(from_json.encode(text, false) == expected);
      CHECK(from_gguf.encode(text, false) == expected);
      CHECK(from_gguf.decode(expected) == text);
    }
  }
  for (const std::string& name : moat::tok::PreTokenizer::supported_names()) CHECK(covered.count(name) == 1);
}

TEST_CASE("tokenizer.json: what is not supported is a clear error") {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() / "moat_tokenizer_json_test";
  std::filesystem::create_directories(dir);
  const auto write = [&](const nlohmann::json& doc) {
    std::ofstream(dir / "tokenizer.json") << doc.dump();
    return (dir / "tokenizer.json").string();
  };
  const nlohmann::json good = nlohmann::json::parse(read_file(kVectors + "gpt-2.tokenizer.json"));

  // A Hugging Face folder: tokenizer.json, with BOS / EOS from tokenizer_config.json.
  write(good);
  std::ofstream(dir / "tokenizer_config.json") << R"({"bos_token": {"content": "<|begin|>"}, "eos_token": "<|end|>", "add_bos_token": true})";
  const Tokenizer folder = Tokenizer::open(dir.string());
  CHECK(folder.bos() == 0);
  CHECK(folder.eos() == 1);
  CHECK(folder.add_bos());
  CHECK(folder.encode("", true) == std::vector<int32_t>{0});
  std::filesystem::remove(dir / "tokenizer_config.json");

  nlohmann::json empty_sequence = good;
  empty_sequence["normalizer"] = {{"type", "Sequence"}, {"normalizers", nlohmann::json::array()}};
  CHECK(Tokenizer::from_tokenizer_json(write(empty_sequence)).vocab_size() == folder.vocab_size());

  nlohmann::json unigram = good;
  unigram["model"]["type"] = "Unigram";
  CHECK_THROWS_WITH_AS(Tokenizer::from_tokenizer_json(write(unigram)), doctest::Contains("model.type is 'Unigram'"),
                       moat::UserError);
  nlohmann::json nfc = good;
  nfc["normalizer"] = {{"type", "NFC"}};
  CHECK_THROWS_WITH_AS(Tokenizer::from_tokenizer_json(write(nfc)), doctest::Contains("normalizer 'NFC'"), moat::UserError);
  nlohmann::json merged = good;
  merged["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "a"}}}, {"behavior", "MergedWithPrevious"}};
  CHECK_THROWS_WITH_AS(Tokenizer::from_tokenizer_json(write(merged)), doctest::Contains("MergedWithPrevious"),
                       moat::UserError);
  std::ofstream(dir / "tokenizer.json") << "{not json";
  CHECK_THROWS_WITH_AS(Tokenizer::from_tokenizer_json((dir / "tokenizer.json").string()), doctest::Contains("not valid JSON"),
                       moat::UserError);
  std::filesystem::remove(dir / "tokenizer.json");
  CHECK_THROWS_WITH_AS(Tokenizer::open(dir.string()), doctest::Contains("has no tokenizer.json"), moat::UserError);
  std::filesystem::remove_all(dir);
}

TEST_CASE("pre-tokenizer expressions: matches and gaps become pieces, empty matches cut nothing") {
  const auto pieces = [](const moat::tok::PreTokenizer& pre, std::string_view text) {
    std::vector<std::string> out;
    for (std::string_view p : pre.split(text)) out.emplace_back(p);
    return out;
  };
  using V = std::vector<std::string>;
  const auto digits = moat::tok::PreTokenizer::from_regexes({R"(\d+|(?=x))"}, "test");
  CHECK(pieces(digits, "a12x3") == V{"a", "12", "x", "3"});
  CHECK(pieces(digits, "").empty());
  // Each expression cuts the pieces of the previous one; `$` is the end of a piece.
  const auto two = moat::tok::PreTokenizer::from_regexes({"[\r\n]", R"(\s+$)"}, "test");
  CHECK(pieces(two, "a  \nb ") == V{"a", "  ", "\n", "b", " "});
  CHECK_THROWS_WITH_AS(two.split("bad \xff utf-8"), doctest::Contains("not valid UTF-8"), moat::UserError);
}
