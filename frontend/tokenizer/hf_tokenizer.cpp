// Tokenizer::from_tokenizer_json: a Hugging Face tokenizer.json whose model is a
// byte-level BPE and whose pre-tokenizer is Split expressions and/or ByteLevel (the
// DeepSeek family's shape), plus tokenizer_config.json beside it for BOS / EOS.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "frontend/tokenizer/tokenizer.h"
#include "support/error.h"

namespace moat::tok {

namespace {

using nlohmann::json;

// GPT-2's expression, which ByteLevel with use_regex applies.
const char* const kGpt2Regex = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

json read_json(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) user_error(path, ": cannot be read; check the path and its permissions");
  try {
    return json::parse(in);
  } catch (const json::exception& e) {
    user_error(path, ": not valid JSON (", e.what(), ")");
  }
}

std::string quote_literal(const std::string& s) {  // a literal string as a PCRE2 pattern
  std::string out;
  for (char c : s) {
    if (std::string_view("\\^$.|?*+()[]{}-/").find(c) != std::string_view::npos) out += '\\';
    out += c;
  }
  return out;
}

// The expressions of one pre-tokenizer node, appended to `out`.
void collect_pre(const json& node, const std::string& path, std::vector<std::string>& out) {
  const std::string type = node.value("type", "");
  if (type == "Sequence") {
    for (const json& p : node.at("pretokenizers")) collect_pre(p, path, out);
  } else if (type == "Split") {
    const json& pattern = node.at("pattern");
    if (node.value("behavior", "") != "Isolated" || node.value("invert", false))
      user_error(path, ": pre_tokenizer Split with behavior '", node.value("behavior", ""), "'",
                 node.value("invert", false) ? " and invert" : "", " is not supported (only Isolated, not inverted)");
    if (pattern.contains("Regex")) out.push_back(pattern.at("Regex").get<std::string>());
    else out.push_back(quote_literal(pattern.at("String").get<std::string>()));
  } else if (type == "ByteLevel") {
    if (node.value("add_prefix_space", false))
      user_error(path, ": pre_tokenizer ByteLevel with add_prefix_space is not supported");
    if (node.value("use_regex", true)) out.push_back(kGpt2Regex);
  } else if (type == "Digits") {
    out.push_back(node.value("individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)");
  } else {
    user_error(path, ": pre_tokenizer type '", type, "' is not supported (Sequence, Split, ByteLevel, Digits are)");
  }
}

// A tokenizer_config.json token field: "text" or {"content": "text"}.
std::string token_field(const json& config, const char* key) {
  if (!config.contains(key) || config.at(key).is_null()) return {};
  const json& v = config.at(key);
  return v.is_string() ? v.get<std::string>() : v.value("content", "");
}

}  // namespace

Tokenizer Tokenizer::from_tokenizer_json(const std::string& path) {
  const json doc = read_json(path);
  try {
    const json& model = doc.at("model");
    if (model.value("type", "") != "BPE")
      user_error(path, ": model.type is '", model.value("type", ""), "'; only BPE tokenizers are supported");
    // DeepSeek's files say "no normalizer" as an empty Sequence.
    const json normalizer = doc.value("normalizer", json());
    const bool no_normalizer = normalizer.is_null() || (normalizer.value("type", "") == "Sequence" &&
                                                        normalizer.value("normalizers", json::array()).empty());
    if (!no_normalizer)
      user_error(path, ": normalizer '", doc.at("normalizer").value("type", "?"),
                 "' is not supported; use the model's GGUF file instead");
    if (!doc.contains("decoder") || doc.at("decoder").is_null() || doc.at("decoder").value("type", "") != "ByteLevel")
      user_error(path, ": only byte-level tokenizers (decoder ByteLevel) are supported");

    VocabSpec spec;
    spec.source = path;
    std::vector<std::pair<std::string, int64_t>> entries;
    for (const auto& [text, id] : model.at("vocab").items()) entries.emplace_back(text, id.get<int64_t>());
    std::vector<std::pair<std::string, int64_t>> added;
    std::vector<bool> added_special;
    if (doc.contains("added_tokens"))
      for (const json& t : doc.at("added_tokens")) {
        added.emplace_back(t.at("content").get<std::string>(), t.at("id").get<int64_t>());
        added_special.push_back(t.value("special", false));
      }
    int64_t size = 0;
    for (const auto& e : entries) size = std::max(size, e.second + 1);
    for (const auto& e : added) size = std::max(size, e.second + 1);
    if (size > (int64_t{1} << 24)) user_error(path, ": token ids up to ", size, " are too large for a vocabulary");
    spec.tokens.assign(size, "");
    spec.types.assign(size, TokenType::unused);
    for (const auto& [text, id] : entries) {
      if (id < 0) user_error(path, ": model.vocab has the negative id ", id);
      spec.tokens[id] = text;
      spec.types[id] = TokenType::normal;
    }
    for (size_t i = 0; i < added.size(); ++i) {
      const auto& [text, id] = added[i];
      if (id < 0) user_error(path, ": added_tokens has the negative id ", id);
      spec.tokens[id] = text;
      spec.types[id] = added_special[i] ? TokenType::control : TokenType::user_defined;
    }
    for (const json& m : model.at("merges")) {
      if (m.is_array() && m.size() == 2) {
        spec.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
        continue;
      }
      const std::string s = m.get<std::string>();
      const size_t space = s.find(' ', 1);
      if (space == std::string::npos)
        user_error(path, ": model.merges entry '", s, "' is not two tokens separated by a space");
      spec.merges.emplace_back(s.substr(0, space), s.substr(space + 1));
    }
    spec.ignore_merges = model.value("ignore_merges", false);

    std::vector<std::string> regexes;
    if (doc.contains("pre_tokenizer") && !doc.at("pre_tokenizer").is_null())
      collect_pre(doc.at("pre_tokenizer"), path, regexes);
    PreTokenizer pre = PreTokenizer::from_regexes(regexes, path);

    const std::string config_path = (std::filesystem::path(path).parent_path() / "tokenizer_config.json").string();
    if (std::filesystem::exists(config_path)) {
      const json config = read_json(config_path);
      const auto id_of = [&](const std::string& text) -> int32_t {
        for (size_t id = 0; id < spec.tokens.size(); ++id)
          if (!text.empty() && spec.tokens[id] == text) return static_cast<int32_t>(id);
        return -1;
      };
      spec.bos = id_of(token_field(config, "bos_token"));
      spec.eos = id_of(token_field(config, "eos_token"));
      spec.add_bos = config.value("add_bos_token", spec.bos >= 0);
      if (config.contains("chat_template") && config.at("chat_template").is_string())
        spec.chat_template = config.at("chat_template").get<std::string>();
    }
    return build(std::move(spec), std::move(pre));
  } catch (const json::exception& e) {
    user_error(path, ": unexpected tokenizer.json layout (", e.what(), ")");
  }
}

}  // namespace moat::tok
