#include "frontend/tokenizer/chat_format.h"

#include "support/error.h"

namespace moat::tok {

namespace {

constexpr std::string_view kUser3 = "<｜User｜>";
constexpr std::string_view kAssistant3 = "<｜Assistant｜>";
constexpr std::string_view kThinkEnd = "</think>";

// Every format once: its --chat-template name and the models whose template writes it.
struct FormatEntry {
  ChatFormat format;
  std::string_view name;
  std::string_view models;
};
constexpr FormatEntry kFormats[] = {
    {ChatFormat::deepseek3, "deepseek3", "DeepSeek-V3"},
    {ChatFormat::deepseek3_1, "deepseek3.1", "V3.1, V3.1-Terminus"},
    {ChatFormat::deepseek_r1, "deepseek-r1", "R1 and R1-Distill, updated"},
    {ChatFormat::deepseek_r1_orig, "deepseek-r1-orig", "the first R1 and R1-Distill"},
    {ChatFormat::deepseek2_5, "deepseek2.5", "V2.5, Coder-V2-0724"},
    {ChatFormat::deepseek2, "deepseek2", "V2, V2-Lite"},
};

void check_roles(std::span<const ChatMessage> messages) {
  for (const ChatMessage& m : messages)
    if (m.role != "system" && m.role != "user" && m.role != "assistant")
      user_error("chat message role '", m.role, "' is not system, user or assistant");
}

// V3, V3.1 and the updated R1: every system message, wherever it is, joined by a blank
// line (empty ones included); V2.5 and the first R1 template keep only the last one.
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

// How a template of the "<｜User｜>" / "<｜Assistant｜>" family differs from V3's.
struct UserAssistantRules {
  bool last_system_only = false;
  enum class Thinking { kept, after_last, after_first } thinking = Thinking::kept;  // what of a reply stays
  std::string_view reply_open;              // after "<｜Assistant｜>" (V3.1: "</think>")
  bool assistant_marker_after_user_only = false;  // V3.1: a reply right after a reply has none
  std::string_view prompt_open;             // after the reply prompt's "<｜Assistant｜>"
  bool prompt_after_user_only = false;      // V3.1: no reply prompt unless a user turn is last
  std::string_view per_system_before_bos;   // V2.5: what each system message writes before BOS
};

UserAssistantRules rules_of(ChatFormat format) {
  using Thinking = UserAssistantRules::Thinking;
  UserAssistantRules r;
  switch (format) {
    case ChatFormat::deepseek3:
    case ChatFormat::deepseek2: break;
    case ChatFormat::deepseek3_1:
      r.thinking = Thinking::after_first;
      r.reply_open = kThinkEnd;
      r.assistant_marker_after_user_only = true;
      r.prompt_open = kThinkEnd;
      r.prompt_after_user_only = true;
      break;
    case ChatFormat::deepseek_r1:
      r.thinking = Thinking::after_last;
      r.prompt_open = "<think>\n";
      break;
    case ChatFormat::deepseek_r1_orig:
      r.last_system_only = true;
      r.thinking = Thinking::after_last;
      break;
    case ChatFormat::deepseek2_5:
      r.last_system_only = true;
      r.per_system_before_bos = "        ";  // eight spaces: text between two tags of the template
      break;
  }
  return r;
}

// The part of a reply that a template keeps (R1 and V3.1 drop the reasoning).
std::string_view kept_reply(std::string_view reply, UserAssistantRules::Thinking thinking) {
  using Thinking = UserAssistantRules::Thinking;
  if (thinking == Thinking::kept) return reply;
  const size_t end = thinking == Thinking::after_last ? reply.rfind(kThinkEnd) : reply.find(kThinkEnd);
  return end == std::string_view::npos ? reply : reply.substr(end + kThinkEnd.size());
}

std::string render_user_assistant(const UserAssistantRules& rules, std::span<const ChatMessage> messages,
                                  bool add_generation_prompt, std::string_view bos, std::string_view eos) {
  std::string out;
  for (const ChatMessage& m : messages)
    if (m.role == "system") out += rules.per_system_before_bos;
  out += bos;
  out += system_prompt(messages, rules.last_system_only);
  bool last_user = false;
  for (const ChatMessage& m : messages) {
    if (m.role == "user") {
      out += kUser3;
      out += m.content;
      last_user = true;
    } else if (m.role == "assistant") {
      if (last_user || !rules.assistant_marker_after_user_only) {
        out += kAssistant3;
        out += rules.reply_open;
      }
      out += kept_reply(m.content, rules.thinking);
      out += eos;
      last_user = false;
    }
  }
  if (add_generation_prompt && (last_user || !rules.prompt_after_user_only)) {
    out += kAssistant3;
    out += rules.prompt_open;
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
    // V3.1 opens a reply with the end of an (empty) reasoning block.
    if (contains(jinja, "<｜Assistant｜></think>")) return ChatFormat::deepseek3_1;
    // V3 joins the system messages; V2.5 (and the first R1) keep the last one.
    const bool last_system_only = contains(jinja, "set ns.system_prompt = message['content']");
    if (!contains(jinja, kThinkEnd)) return last_system_only ? ChatFormat::deepseek2_5 : ChatFormat::deepseek3;
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
  for (const FormatEntry& f : kFormats)
    if (name == f.name) return f.format;
  user_error(option, ": '", name, "' is not a chat format moatless knows; use one of ", chat_format_list());
}

std::string_view chat_format_name(ChatFormat format) {
  for (const FormatEntry& f : kFormats)
    if (f.format == format) return f.name;
  MOAT_INTERNAL_ERROR("chat format ", static_cast<int>(format), " has no entry in kFormats");
}

const std::string& chat_format_list() {
  static const std::string list = [] {
    std::string out;
    for (const FormatEntry& f : kFormats) {
      if (!out.empty()) out += ", ";
      out += std::string(f.name) + " (" + std::string(f.models) + ")";
    }
    return out;
  }();
  return list;
}

std::string render_chat(ChatFormat format, std::span<const ChatMessage> messages, bool add_generation_prompt,
                        std::string_view bos, std::string_view eos) {
  check_roles(messages);
  return format == ChatFormat::deepseek2 ? render_deepseek2(messages, add_generation_prompt, bos, eos)
                                         : render_user_assistant(rules_of(format), messages, add_generation_prompt, bos, eos);
}

}  // namespace moat::tok
