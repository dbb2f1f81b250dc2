// DeepSeek chat formats against Jinja2's renderings of the models' own chat templates
// (tests/data/tokenizer/chat_vectors.json, made by tools/make_chat_vectors.py).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "frontend/tokenizer/chat_format.h"
#include "support/error.h"

namespace {

using moat::tok::ChatFormat;

const std::string kVectors = std::string(MOAT_SOURCE_DIR) + "/tests/data/tokenizer/chat_vectors.json";

nlohmann::json read_vectors() {
  std::ifstream in(kVectors, std::ios::binary);
  REQUIRE_MESSAGE(in.good(), "missing ", kVectors, " (run tools/make_chat_vectors.py)");
  std::ostringstream s;
  s << in.rdbuf();
  return nlohmann::json::parse(s.str());
}

}  // namespace

TEST_CASE("each DeepSeek chat template is recognised as its format") {
  const nlohmann::json doc = read_vectors();
  for (const auto& item : doc.at("templates").items()) {
    const std::string name = item.key();
    INFO(name);
    const std::optional<ChatFormat> format = moat::tok::detect_chat_format(item.value().get<std::string>());
    REQUIRE(format.has_value());
    CHECK(moat::tok::chat_format_name(*format) == name);
    CHECK(moat::tok::chat_format_named(name, "--chat-template") == *format);
  }
  CHECK_FALSE(moat::tok::detect_chat_format("{{ messages[0]['content'] }}").has_value());
  CHECK_FALSE(moat::tok::detect_chat_format("").has_value());
}

TEST_CASE("conversations render exactly as Jinja2 renders the templates") {
  const nlohmann::json doc = read_vectors();
  const std::string bos = doc.at("bos"), eos = doc.at("eos");
  int cases = 0;
  for (const nlohmann::json& c : doc.at("cases")) {
    const std::string name = c.at("template");
    std::vector<moat::tok::ChatMessage> messages;
    for (const nlohmann::json& m : c.at("messages")) messages.push_back({m.at("role"), m.at("content")});
    const bool generation_prompt = c.at("add_generation_prompt");
    INFO(name, " case ", cases, " generation prompt ", generation_prompt);
    const ChatFormat format = moat::tok::chat_format_named(name, "test");
    CHECK(moat::tok::render_chat(format, messages, generation_prompt, bos, eos) == c.at("expected").get<std::string>());
    ++cases;
  }
  CHECK(cases >= 40);
}

TEST_CASE("chat format errors name the option and the role") {
  CHECK_THROWS_WITH_AS(moat::tok::chat_format_named("chatml", "--chat-template"),
                       doctest::Contains("--chat-template: 'chatml'"), moat::UserError);
  const std::vector<moat::tok::ChatMessage> bad = {{"tool", "x"}};
  CHECK_THROWS_WITH_AS(moat::tok::render_chat(ChatFormat::deepseek3, bad, true, "", ""), doctest::Contains("'tool'"),
                       moat::UserError);
}
