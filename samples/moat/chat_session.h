// moat run --chat: a conversation in the model's chat format. Each user message is
// rendered with the whole conversation (frontend/tokenizer/chat_format.h); only the
// tokens after what the session already holds are evaluated, and the reply streams as
// it is sampled. On a terminal the user types one message per line (line editing and
// history with libedit, samples/moat/line_input.h); otherwise every line of standard
// input is a message (for scripts and tests). Ctrl-C stops a reply and a second one ends
// the chat with status 130 (chat_interrupt.h). When the context is full the oldest
// exchanges are dropped (the system message stays) and the rest is evaluated again.
#pragma once

#include <cstdint>
#include <string>

#include "runtime/sampler.h"
#include "samples/moat/run_setup.h"

namespace moat::cli {

inline constexpr int64_t kDefaultChatTokens = 256;  // per reply, when -n is not given

struct ChatOptions {
  runtime::SamplingOptions sampling;
  int64_t batch = 512;
  int64_t max_tokens = kDefaultChatTokens;  // per reply
  std::string system;                       // "" : no system message
  std::string first_message;                // "" : none; read every message
  std::string format_name;                  // --chat-template; "" : from the model
};

// UserError when the model's chat format cannot be known (no template, or one we do not
// recognise, and no --chat-template): checked before the weights are loaded.
void check_chat_format(const RunSetup& setup, const ChatOptions& options);

// Runs the conversation until the input ends. Returns the exit code (0); UserError when
// a message does not fit the context even with every earlier exchange dropped.
int run_chat(RunSetup& setup, const ChatOptions& options);

// The help of --chat-template: the format names, from chat_format.h's table.
const std::string& chat_template_help();

}  // namespace moat::cli
