#include "frontend/tokenizer/chat_format.h"

#include "support/error.h"

namespace moat::tok {

namespace {

constexpr std::string_view kUser3 = "<｜User｜>";
constexpr std::string_view kAssistant3 = "<｜Assistant｜>";
constexpr std::string_view kThinkEnd = "</think>";

void check_roles(std::span<const ChatMessage> messages) {
  for (const ChatMessage& m : messages)
    if (m.role != "system" && m.role != "user" && m.role != "assistant")
      user_error("chat message role '", m.role, "' is not system, user or assistant");
}

// V3 and R1: every system message, wherever it is, joined by a blank line (empty ones
// included); the first R1 template keeps only the last one.
std::string system_prompt(std::span<const ChatMessage> messages, bool last_only) {
  std::string out;
  bool first = true;
  for (const ChatMessage& m : messages) {
    if (m.role != "system") continue;
    if (last_only) {
      out = m.content;
      continue;
    }
    if (!first) out += "\n\n";
    out += m.content;
    first = false;
  }
  return out;
}

// R1 replies keep only what follows the last "</think>" (the reasoning is dropped).
std::string_view after_thinking(std::string_view reply) {
  const size_t end = reply.rfind(kThinkEnd);
  return end == std::string_view::npos ? reply : reply.substr(end + kThinkEnd.size());
}

std::string render_user_assistant(ChatFormat format, std::span<const ChatMessage> messages, bool add_generation_prompt,
                                  std::string_view bos, std::string_view eos) {
  const bool r1 = format != ChatFormat::deepseek3;
  std::string out(bos);
  out += system_prompt(messages, format == ChatFormat::deepseek_r1_orig);
  for (const ChatMessage& m : messages) {
    if (m.role == "user") {
      out += kUser3;
      out += m.content;
    } else if (m.role == "assistant") {
      out += kAssistant3;
      out += r1 ? after_thinking(m.content) : std::string_view(m.content);
      out += eos;
    }
  }
  if (add_generation_prompt) {
    out += kAssistant3;
    if (format == ChatFormat::deepseek_r1) out += "<think>\n";
  }
  return out;
}

// V2: messages in order; a system message is its text and a blank line where it stands.
std::string render_deepseek2(std::span<const ChatMessage> messages, bool add_generation_prompt, std::string_view bos,
                             std::string_view eos) {
  std::string out(bos);
  for (const ChatMessage& m : messages) {
    if (m.role == "system") {
      out += m.content + "\n\n";
    } else if (m.role == "user") {
      out += "User: " + m.content + "\n\n";
    } else {
      out += "Assistant: " + m.content;
      out += eos;
    }
  }
  if (add_generation_prompt) out += "Assistant:";
  return out;
}

bool contains(std::string_view text, std::string_view part) { return text.find(part) != std::string_view::npos; }

}  // namespace

std::optional<ChatFormat> detect_chat_format(std::string_view jinja) {
  if (contains(jinja, kAssistant3) && contains(jinja, kUser3)) {
    if (!contains(jinja, kThinkEnd)) return ChatFormat::deepseek3;
    // The updated R1 template opens the reply with "<think>" and a newline (written
    // "\n" inside its Jinja string literal, or as a real newline).
    if (contains(jinja, "<｜Assistant｜><think>\\n") || contains(jinja, "<｜Assistant｜><think>\n"))
      return ChatFormat::deepseek_r1;
    return ChatFormat::deepseek_r1_orig;
  }
  if (contains(jinja, "'User: '") && contains(jinja, "Assistant:")) return ChatFormat::deepseek2;
  return std::nullopt;
}

ChatFormat chat_format_named(std::string_view name, std::string_view option) {
  for (ChatFormat f : {ChatFormat::deepseek3, ChatFormat::deepseek_r1, ChatFormat::deepseek_r1_orig, ChatFormat::deepseek2})
    if (name == chat_format_name(f)) return f;
  user_error(option, ": '", name,
             "' is not a chat format moatless knows; use deepseek3 (V3), deepseek-r1 (R1), deepseek-r1-orig (the "
             "first R1 and R1-Distill) or deepseek2 (V2, V2-Lite)");
}

std::string_view chat_format_name(ChatFormat format) {
  switch (format) {
    case ChatFormat::deepseek3: return "deepseek3";
    case ChatFormat::deepseek_r1: return "deepseek-r1";
    case ChatFormat::deepseek_r1_orig: return "deepseek-r1-orig";
    case ChatFormat::deepseek2: return "deepseek2";
  }
  return "deepseek3";
}

std::string render_chat(ChatFormat format, std::span<const ChatMessage> messages, bool add_generation_prompt,
                        std::string_view bos, std::string_view eos) {
  check_roles(messages);
  return format == ChatFormat::deepseek2 ? render_deepseek2(messages, add_generation_prompt, bos, eos)
                                         : render_user_assistant(format, messages, add_generation_prompt, bos, eos);
}

}  // namespace moat::tok
