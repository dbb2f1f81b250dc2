#include "samples/moat/chat_session.h"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <string>

#include "frontend/tokenizer/chat_format.h"
#include "runtime/generate.h"
#include "samples/moat/chat_interrupt.h"
#include "samples/moat/line_input.h"
#include "support/error.h"

namespace moat::cli {

namespace {

tok::ChatFormat chat_format_of(const RunSetup& setup, const ChatOptions& options) {
  if (!options.format_name.empty()) return tok::chat_format_named(options.format_name, "--chat-template");
  const std::string& jinja = setup.tokenizer->chat_template();
  if (jinja.empty())
    user_error(setup.model_path, " has no chat template (tokenizer.chat_template); choose a format with "
               "--chat-template NAME (", tok::chat_format_list(), "), or run a plain prompt with -p");
  if (std::optional<tok::ChatFormat> format = tok::detect_chat_format(jinja)) return *format;
  user_error(setup.model_path, ": its chat template is not a DeepSeek format moatless knows; choose one with "
             "--chat-template NAME (", tok::chat_format_list(), ")");
}

std::string trim(const std::string& s) {
  const size_t first = s.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t\r\n") - first + 1);
}

// The next user message. On a terminal an empty line ends the chat; from a pipe empty
// lines are skipped. False at the end of input.
bool read_message(LineInput& input, std::string& message) {
  while (true) {
    if (input.terminal()) std::fputs("\n", stdout);
    if (!input.read("> ", message)) return false;
    message = trim(message);
    if (!message.empty()) return true;
    if (input.terminal()) return false;
  }
}

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

// Drops the oldest exchange (the first user message and the reply after it), keeping
// system messages and the last message. False when there is none to drop.
bool drop_oldest_exchange(std::vector<tok::ChatMessage>& messages) {
  size_t first = 0;
  while (first < messages.size() && messages[first].role == "system") ++first;
  if (first + 1 >= messages.size()) return false;  // only the message being answered is left
  size_t end = first + 1;
  while (end + 1 < messages.size() && messages[end].role == "assistant") ++end;
  messages.erase(messages.begin() + static_cast<std::ptrdiff_t>(first), messages.begin() + static_cast<std::ptrdiff_t>(end));
  return true;
}

// The ids of the conversation with the reply prompt, leaving `reply_room` tokens of the
// context free: the oldest exchanges are dropped (said on stderr) until it fits, as
// llama.cpp's context shift does; the system message stays. UserError when the last
// message does not fit even alone.
std::vector<int32_t> render_to_fit(const tok::Tokenizer& tokenizer, tok::ChatFormat format,
                                   std::vector<tok::ChatMessage>& messages, int64_t context, int64_t reply_room,
                                   const std::string& bos, const std::string& eos) {
  const auto render = [&] { return tokenizer.encode(tok::render_chat(format, messages, true, bos, eos), false); };
  std::vector<int32_t> ids = render();
  int dropped = 0;
  while (static_cast<int64_t>(ids.size()) + reply_room > context && drop_oldest_exchange(messages)) {
    ++dropped;
    ids = render();
  }
  if (dropped)
    std::cerr << "moat: the context of " << context << " tokens is full: dropped the "
              << (dropped == 1 ? std::string("oldest exchange") : std::to_string(dropped) + " oldest exchanges")
              << "\n";
  if (static_cast<int64_t>(ids.size()) >= context)
    user_error("the message (", ids.size(), " tokens in the chat format, with the system message if any) does not "
               "fit the context of ", context, " tokens; shorten it or raise --ctx");
  return ids;
}

void add_stats(runtime::GenerationStats& total, const runtime::GenerationStats& stats) {
  total.prompt_tokens += stats.prompt_tokens;
  total.generated_tokens += stats.generated_tokens;
  total.prompt_ms += stats.prompt_ms;
  total.generate_ms += stats.generate_ms;
  total.drafted += stats.drafted;
  total.accepted += stats.accepted;
  total.draft_passes += stats.draft_passes;
}

}  // namespace

void check_chat_format(const RunSetup& setup, const ChatOptions& options) { (void)chat_format_of(setup, options); }

const std::string& chat_template_help() {
  static const std::string help =
      "chat format when the model's template is missing or unknown: " + tok::chat_format_list();
  return help;
}

int run_chat(RunSetup& setup, const ChatOptions& options) {
  const tok::Tokenizer& tokenizer = *setup.tokenizer;
  const tok::ChatFormat format = chat_format_of(setup, options);
  // The templates write BOS and EOS as text; the tokenizer finds them as special tokens.
  const std::string bos_text = tokenizer.bos() >= 0 ? tokenizer.token_bytes(tokenizer.bos()) : "";
  const std::string eos_text = tokenizer.eos() >= 0 ? tokenizer.token_bytes(tokenizer.eos()) : "";
  runtime::Session& session = *setup.session;
  const int64_t context = session.context();
  // Room kept free for a reply when older turns must go: the reply's limit, at most half
  // the context.
  const int64_t reply_room = std::min(options.max_tokens, context / 2);
  runtime::Sampler sampler(options.sampling);
  runtime::GenerationOptions generation;
  generation.max_tokens = options.max_tokens;
  generation.batch = options.batch;
  generation.stop_ids = stop_tokens(setup);
  generation.cancel = reply_cancel();
  generation.draft_tokens = setup.draft_tokens;

  std::vector<tok::ChatMessage> messages;
  if (!options.system.empty()) messages.push_back({"system", options.system});
  LineInput input;
  install_chat_interrupt();
  std::vector<int32_t> evaluated;  // the tokens the session holds, in order
  runtime::GenerationStats total;
  std::string message = options.first_message;
  bool have_message = !message.empty() || read_message(input, message);
  while (have_message) {
    if (!input.terminal()) std::cout << "> " << message << std::endl;
    messages.push_back({"user", message});
    const std::vector<int32_t> ids =
        render_to_fit(tokenizer, format, messages, context, reply_room, bos_text, eos_text);
    // Reuse what the session already evaluated; re-evaluate from the first difference
    // (after dropped exchanges: from the system message on).
    // (A cut longer than the cache takes back keeps nothing: Model::cache_rewind_limit.)
    const auto keep = static_cast<size_t>(session.rewind(static_cast<int64_t>(common_prefix(ids, evaluated))));
    evaluated.resize(keep);
    const std::span<const int32_t> fresh(ids.data() + keep, ids.size() - keep);
    session.prepare(static_cast<int64_t>(fresh.size()), options.batch);
    setup.progress.disable();
    tok::StreamDecoder decoder(tokenizer);
    std::string reply;
    begin_reply();
    const runtime::GenerationStats stats =
        runtime::generate(session, sampler, fresh, evaluated, generation, [&](int32_t id) {
          const std::string piece = decoder.push(id);
          reply += piece;
          std::fwrite(piece.data(), 1, piece.size(), stdout);
          std::fflush(stdout);
        });
    const bool interrupted = end_reply();
    const std::string rest = decoder.flush();
    reply += rest;
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::fputs("\n", stdout);
    std::fflush(stdout);
    // `evaluated` now ends with the reply; its last token is in the session unless the
    // context filled up. A stopped or cut reply is kept as it is: the conversation is
    // what the user saw.
    evaluated.resize(static_cast<size_t>(session.cached_tokens()));
    messages.push_back({"assistant", trim(reply)});
    add_stats(total, stats);
    if (interrupted || stats.stop == runtime::StopReason::cancelled)
      std::cerr << "moat: reply stopped (Ctrl-C); a second Ctrl-C at the prompt ends the chat\n";
    if (stats.stop == runtime::StopReason::context_full)
      std::cerr << "moat: the reply filled the context of " << context
                << " tokens and was cut; the next message drops the oldest exchanges\n";
    have_message = read_message(input, message);
  }
  print_run_stats(setup, total);
  return 0;
}

}  // namespace moat::cli
