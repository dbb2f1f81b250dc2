// Tokenizer::from_gguf: the tokenizer.ggml.* metadata keys (llama.cpp's
// llama_vocab::load) of a byte-level BPE vocabulary.
#include "frontend/gguf.h"
#include "frontend/tokenizer/tokenizer.h"
#include "support/error.h"

namespace moat::tok {

namespace {

const gguf::Value& require(const gguf::File& file, std::string_view key) {
  const gguf::Value* v = file.find(key);
  if (!v)
    user_error(file.path(), ": metadata key ", key,
               " is missing; the file has no usable tokenizer (convert the model with a current llama.cpp "
               "convert_hf_to_gguf.py, or give the Hugging Face folder with tokenizer.json)");
  return *v;
}

std::string context(const gguf::File& file, std::string_view key) { return cat(file.path(), ": metadata key ", key); }

}  // namespace

Tokenizer Tokenizer::from_gguf(const gguf::File& file) {
  const std::string model = require(file, "tokenizer.ggml.model").as_string(context(file, "tokenizer.ggml.model"));
  if (model != "gpt2")
    user_error(file.path(), ": tokenizer.ggml.model is '", model,
               "'; only byte-level BPE tokenizers ('gpt2', as the DeepSeek family uses) are supported");
  const std::string pre_name = require(file, "tokenizer.ggml.pre").as_string(context(file, "tokenizer.ggml.pre"));
  PreTokenizer pre = PreTokenizer::named(pre_name, file.path());

  VocabSpec spec;
  spec.source = file.path();
  for (const gguf::Value& v :
       require(file, "tokenizer.ggml.tokens").as_array(gguf::ValueType::string, context(file, "tokenizer.ggml.tokens")))
    spec.tokens.push_back(v.str);
  if (const gguf::Value* types = file.find("tokenizer.ggml.token_type")) {
    for (const gguf::Value& v : types->as_array(gguf::ValueType::i32, context(file, "tokenizer.ggml.token_type"))) {
      if (v.i < 1 || v.i > 6)
        user_error(file.path(), ": tokenizer.ggml.token_type holds ", v.i,
                   ", which is not a token type (1 normal .. 6 byte)");
      spec.types.push_back(static_cast<TokenType>(v.i));
    }
  }
  const auto& merges =
      require(file, "tokenizer.ggml.merges").as_array(gguf::ValueType::string, context(file, "tokenizer.ggml.merges"));
  spec.merges.reserve(merges.size());
  for (size_t i = 0; i < merges.size(); ++i) {
    const std::string& m = merges[i].str;
    const size_t space = m.find(' ', 1);  // a merge is "LEFT RIGHT"; LEFT is never empty
    if (space == std::string::npos || space + 1 >= m.size())
      user_error(file.path(), ": tokenizer.ggml.merges[", i, "] is '", m, "', not two tokens separated by a space");
    spec.merges.emplace_back(m.substr(0, space), m.substr(space + 1));
  }
  const auto id_of = [&](std::string_view key) -> int32_t {
    const std::optional<uint64_t> id = file.find_u64(key);
    if (!id) return -1;
    if (*id >= spec.tokens.size())
      user_error(file.path(), ": ", key, " is ", *id, ", outside the vocabulary of ", spec.tokens.size(), " tokens");
    return static_cast<int32_t>(*id);
  };
  spec.bos = id_of("tokenizer.ggml.bos_token_id");
  spec.eos = id_of("tokenizer.ggml.eos_token_id");
  // Without tokenizer.ggml.add_bos_token: the families that start prompts with BOS.
  const bool bos_family = pre_name == "deepseek-llm" || pre_name == "deepseek-coder" || pre_name == "deepseek-v3" ||
                          pre_name == "llama-bpe";
  spec.add_bos = file.find_bool("tokenizer.ggml.add_bos_token").value_or(bos_family);
  spec.chat_template = file.find_string("tokenizer.chat_template").value_or("");
  spec.ignore_merges = pre_name == "llama-bpe";  // llama 3's tokenizer.json "ignore_merges": true
  return build(std::move(spec), std::move(pre));
}

}  // namespace moat::tok
