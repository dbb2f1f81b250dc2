#include "samples/moat/chat_session.h"

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "frontend/tokenizer/chat_format.h"
#include "runtime/generate.h"
#include "support/error.h"

namespace moat::cli {

namespace {

tok::ChatFormat chat_format_of(const RunSetup& setup, const ChatOptions& options) {
  if (!options.format_name.empty()) return tok::chat_format_named(options.format_name, "--chat-template");
  const std::string& jinja = setup.tokenizer->chat_template();
  if (jinja.empty())
    user_error(setup.model_path, " has no chat template (tokenizer.chat_template); choose a format with "
               "--chat-template deepseek3 or deepseek2, or run a plain prompt with -p");
  if (std::optional<tok::ChatFormat> format = tok::detect_chat_format(jinja)) return *format;
  user_error(setup.model_path, ": its chat template is not a DeepSeek V2 / V3 format moatless knows; choose one with "
             "--chat-template deepseek3 or deepseek2");
}

std::string trim(const std::string& s) {
  const size_t first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

// The next user message: from the terminal (with a "> " prompt) or the next line of
// standard input. False at the end of input or, on a terminal, an empty line.
bool read_message(bool terminal, std::string& message) {
  while (true) {
    if (terminal) {
      std::fputs("\n> ", stdout);
      std::fflush(stdout);
    }
    if (!std::getline(std::cin, message)) return false;
    message = trim(message);
    if (!message.empty()) return true;
    if (terminal) return false;
  }
}

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

}  // namespace

void check_chat_format(const RunSetup& setup, const ChatOptions& options) { (void)chat_format_of(setup, options); }

int run_chat(RunSetup& setup, const ChatOptions& options) {
  const tok::Tokenizer& tokenizer = *setup.tokenizer;
  const tok::ChatFormat format = chat_format_of(setup, options);
  // The templates write BOS and EOS as text; the tokenizer finds them as special tokens.
  const std::string bos_text = tokenizer.bos() >= 0 ? tokenizer.token_bytes(tokenizer.bos()) : "";
  const std::string eos_text = tokenizer.eos() >= 0 ? tokenizer.token_bytes(tokenizer.eos()) : "";
  runtime::Session& session = *setup.session;
  runtime::Sampler sampler(options.sampling);
  runtime::GenerationOptions generation;
  generation.max_tokens = options.max_tokens;
  generation.batch = options.batch;
  generation.stop_ids = stop_tokens(setup);

  std::vector<tok::ChatMessage> messages;
  if (!options.system.empty()) messages.push_back({"system", options.system});
  const bool terminal = isatty(STDIN_FILENO) == 1 && isatty(STDOUT_FILENO) == 1;
  std::vector<int32_t> evaluated;  // the tokens the session holds, in order
  runtime::GenerationStats total;
  std::string message = options.first_message;
  bool have_message = !message.empty() || read_message(terminal, message);
  while (have_message) {
    if (!terminal) std::cout << "> " << message << "\n";
    messages.push_back({"user", message});
    const std::string text = tok::render_chat(format, messages, true, bos_text, eos_text);
    const std::vector<int32_t> ids = tokenizer.encode(text, false);
    // Reuse what the session already evaluated; re-evaluate from the first difference.
    const size_t keep = common_prefix(ids, evaluated);
    session.rewind(static_cast<int64_t>(keep));
    evaluated.resize(keep);
    const std::span<const int32_t> fresh(ids.data() + keep, ids.size() - keep);
    if (session.cached_tokens() + static_cast<int64_t>(fresh.size()) >= session.context()) {
      std::cerr << "moat: the conversation no longer fits the context of " << session.context()
                << " tokens; start again with a larger --ctx\n";
      break;
    }
    session.prepare(static_cast<int64_t>(fresh.size()), options.batch);
    setup.progress.disable();
    tok::StreamDecoder decoder(tokenizer);
    std::string reply;
    const runtime::GenerationStats stats =
        runtime::generate(session, sampler, fresh, evaluated, generation, [&](int32_t id) {
          const std::string piece = decoder.push(id);
          reply += piece;
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
        });
    const std::string rest = decoder.flush();
    reply += rest;
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::fputs("\n", stdout);
    std::fflush(stdout);
    // `evaluated` now ends with the reply; its last token is in the session unless the
    // context filled up.
    evaluated.resize(static_cast<size_t>(session.cached_tokens()));
    messages.push_back({"assistant", trim(reply)});
    total.prompt_tokens += stats.prompt_tokens;
    total.generated_tokens += stats.generated_tokens;
    total.prompt_ms += stats.prompt_ms;
    total.generate_ms += stats.generate_ms;
    if (stats.stop == runtime::StopReason::context_full) {
      std::cerr << "moat: the context of " << session.context() << " tokens is full; start again with a larger --ctx\n";
      break;
    }
    have_message = read_message(terminal, message);
  }
  print_run_stats(setup, total);
  return 0;
}

}  // namespace moat::cli
