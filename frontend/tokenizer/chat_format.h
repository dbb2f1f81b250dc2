// Chat formats of the DeepSeek family: how a conversation becomes prompt text, exactly
// as the models' own Jinja chat templates render it (tests/data/tokenizer/
// chat_vectors.json holds renderings made with Jinja2 by tools/make_chat_vectors.py,
// with the rules in its header). The format is recognised from the template text
// stored with the model; templates are not executed.
#pragma once

#include <optional>
#include <span>
#include <string>
#include <string_view>

namespace moat::tok {

enum class ChatFormat {
  deepseek3,         // V3: BOS, system messages joined, "<｜User｜>…", "<｜Assistant｜>…<EOS>"
  deepseek3_1,       // V3.1 (non-thinking): as V3, a reply after a user turn opens "<｜Assistant｜></think>"
  deepseek_r1,       // R1 (updated): as V3, replies cut after "</think>", reply prompt opens "<think>\n"
  deepseek_r1_orig,  // R1 / R1-Distill (first): as V3, only the last system message, replies cut after "</think>"
  deepseek2_5,       // V2.5 / Coder-V2-0724: as V3, only the last system message (and 8 spaces before BOS per system message)
  deepseek2,         // V2 / V2-Lite chat: "User: …\n\n", "Assistant: …<EOS>", reply prompt "Assistant:"
};

struct ChatMessage {
  std::string role;  // "system", "user" or "assistant"
  std::string content;
};

// The format a Jinja chat template writes, recognised by its markers; nullopt when it
// is none of ours.
std::optional<ChatFormat> detect_chat_format(std::string_view jinja);
// A format by name (chat_format_name's spellings), for --chat-template. UserError
// naming `option` and listing the names (chat_format_list) otherwise.
ChatFormat chat_format_named(std::string_view name, std::string_view option);
std::string_view chat_format_name(ChatFormat format);  // "deepseek3", "deepseek3.1", "deepseek-r1", ...
// Every format's name with the models that use it, for help and error messages:
// "deepseek3 (DeepSeek-V3), deepseek3.1 (V3.1), ...". One table holds both.
const std::string& chat_format_list();

// The text of `messages`, starting with `bos` (the BOS token's text, which every
// template writes itself: encode the result without adding BOS) and ending, when
// `add_generation_prompt`, with what opens the assistant's reply. `eos`: the text of
// the end-of-sentence token that closes each reply. Contents are not trimmed.
// UserError for a role other than system, user or assistant.
std::string render_chat(ChatFormat format, std::span<const ChatMessage> messages, bool add_generation_prompt,
                        std::string_view bos, std::string_view eos);

}  // namespace moat::tok
