// moat run: a model on a device. A text prompt (-p / -f) streams the generated text as
// it is sampled; a prompt of token ids (--tokens) prints the generated ids; --chat runs
// a conversation in the model's chat format (chat_session.cpp). Every path ends with one
// stats line on stderr.
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "runtime/generate.h"
#include "runtime/sampler.h"
#include "samples/moat/chat_session.h"
#include "samples/moat/commands.h"
#include "samples/moat/run_setup.h"
#include "support/error.h"
#include "support/npy.h"

namespace moat::cli {

namespace {

constexpr int64_t kDefaultTextTokens = 128;  // -n for text prompts when not given

std::vector<int32_t> parse_tokens(const std::string& text) {
  std::string bad;
  const std::optional<std::vector<int64_t>> ids = parse_integer_list(text, 0, INT32_MAX, bad);
  if (!ids) user_error("--tokens: '", bad, "' is not a token id (give non-negative integers separated by commas)");
  return std::vector<int32_t>(ids->begin(), ids->end());
}

runtime::SamplingOptions sampling_options(const ParsedArgs& args) {
  runtime::SamplingOptions sampling;
  sampling.temperature = args.number("--temp", 0.0, 0.0, 1e6);
  sampling.top_k = args.integer("--top-k", 0, 0, 1 << 30);
  sampling.top_p = args.number("--top-p", 1.0, 0.0, 1.0);
  sampling.min_p = args.number("--min-p", 0.0, 0.0, 1.0);
  sampling.repeat_penalty = args.number("--repeat-penalty", 1.0, 0.0, 1e6);
  sampling.seed = static_cast<uint64_t>(args.integer("--seed", 0, 0, INT64_MAX));
  return sampling;
}

// The prompt's ids and, for a text prompt, its text.
struct Prompt {
  std::vector<int32_t> ids;
  std::string text;
  bool is_text = false;
};

Prompt read_prompt(const ParsedArgs& args, const RunSetup& setup) {
  Prompt prompt;
  if (args.has("--tokens")) {
    prompt.ids = parse_tokens(args.value("--tokens"));
    return prompt;
  }
  prompt.is_text = true;
  prompt.text = args.has("-p") ? args.value("-p") : read_option_file("-f", args.value("-f"));
  if (prompt.text.empty()) user_error("the prompt is empty; give some text with -p or -f");
  const bool bos = !args.has("--no-bos") && setup.tokenizer->add_bos();
  prompt.ids = setup.tokenizer->encode(prompt.text, bos);
  return prompt;
}

int run_once(const ParsedArgs& args) {
  const int prompt_kinds = args.has("-p") + args.has("-f") + args.has("--tokens");
  if (prompt_kinds != 1) user_error("moat run needs one prompt: -p TEXT, -f FILE or --tokens ID,ID,... (see moat run --help)");
  runtime::Sampler sampler(sampling_options(args));
  const int64_t batch = args.integer("--batch", 512, 1, 1 << 20);
  RunSetup setup;
  open_run(args, !args.has("--tokens"), setup);
  const Prompt prompt = read_prompt(args, setup);

  runtime::Session& session = *setup.session;
  int64_t n_gen = args.integer("-n", prompt.is_text ? kDefaultTextTokens : 0, 0, 1 << 30);
  if (static_cast<int64_t>(prompt.ids.size()) + n_gen > session.context()) {
    if (args.has("-n") || static_cast<int64_t>(prompt.ids.size()) > session.context())
      user_error("the prompt (", prompt.ids.size(), " tokens) plus -n ", n_gen, " passes the context of ",
                 session.context(), " tokens; shorten them or raise --ctx");
    n_gen = session.context() - static_cast<int64_t>(prompt.ids.size());  // the default -n, within the context
  }
  session.prepare(static_cast<int64_t>(prompt.ids.size()), batch,
                  args.has("--logits-out") ? models::LogitRows::all : models::LogitRows::last);
  setup.progress.disable();  // text streams from here on

  runtime::GenerationOptions options;
  options.max_tokens = n_gen;
  options.batch = batch;
  options.stop_ids = stop_tokens(setup);
  std::vector<int32_t> generated, history;
  std::vector<float> logits;
  std::optional<tok::StreamDecoder> decoder;
  if (prompt.is_text) {
    decoder.emplace(*setup.tokenizer);
    if (!args.has("--no-display-prompt")) std::fwrite(prompt.text.data(), 1, prompt.text.size(), stdout);
    std::fflush(stdout);
  }
  const runtime::GenerationStats stats = runtime::generate(
      session, sampler, prompt.ids, history, options,
      [&](int32_t id) {
        generated.push_back(id);
        if (!decoder) return;
        const std::string piece = decoder->push(id);
        std::fwrite(piece.data(), 1, piece.size(), stdout);
        std::fflush(stdout);
      },
      args.has("--logits-out") ? &logits : nullptr);
  if (decoder) {
    const std::string rest = decoder->flush();
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::fputs("\n", stdout);
  } else {
    for (size_t i = 0; i < generated.size(); ++i) std::cout << (i ? " " : "") << generated[i];
    if (!generated.empty()) std::cout << "\n";
  }
  std::cout.flush();
  std::fflush(stdout);
  if (args.has("--logits-out")) {
    const int64_t vocab = setup.model.hparams.n_vocab;
    write_npy_f32(args.value("--logits-out"), {static_cast<int64_t>(logits.size()) / vocab, vocab}, logits);
  }
  if (stats.stop == runtime::StopReason::context_full)
    std::cerr << "moat: stopped: the context of " << session.context() << " tokens is full (raise --ctx)\n";
  print_run_stats(setup, stats);
  return 0;
}

int run_model(const ParsedArgs& args) {
  if (!args.has("--chat")) return run_once(args);
  if (args.has("--tokens") || args.has("-f") || args.has("--logits-out"))
    user_error("--chat takes its turns as text (-p for the first one, then the terminal or standard input); "
               "--tokens, -f and --logits-out are for one-shot runs");
  ChatOptions chat;
  chat.sampling = sampling_options(args);
  chat.batch = args.integer("--batch", 512, 1, 1 << 20);
  chat.max_tokens = args.integer("-n", kDefaultChatTokens, 1, 1 << 30);
  chat.system = args.value_or("--system", "");
  chat.first_message = args.value_or("-p", "");
  chat.format_name = args.value_or("--chat-template", "");
  RunSetup setup;
  open_run(args, true, setup, [&chat](const RunSetup& s) { check_chat_format(s, chat); });
  return run_chat(setup, chat);
}

const Command kRun{
    {"run",
     "[-m MODEL] [--device ID] (-p TEXT | -f FILE | --tokens ID,ID,... | --chat) [-n N] [--ctx N] [--batch K] [--cache-type T] [--memory-budget SIZE] "
     "[--temp T] [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty P] [--seed S] [-t N] [--logits-out FILE.npy] "
     "[--routing METHOD] [--no-bos] [--no-display-prompt] [--system TEXT] [--chat-template NAME]",
     "generate text (or token ids, or logits) with a model on a device; --chat for a conversation",
     {{"-m", "MODEL", "model file (GGUF) or Hugging Face folder (default: the demo model, models/kjv-tiny.gguf)"},
      {"--device", "ID", "cpu (default), opencl:N, cuda:N or hip:N (see moat devices)"},
      {"-p", "TEXT", "prompt text (with --chat: the first message)"},
      {"-f", "FILE", "read the prompt text from FILE"},
      {"--tokens", "IDS", "prompt as comma-separated token ids; prints the generated ids"},
      {"-n", "N", "tokens to generate at most (default: 128 for text, 0 for --tokens, 256 per --chat reply)"},
      {"--ctx", "N", "context length in tokens (default: the model's, capped to half the available memory)"},
      {"--batch", "K", "prompt tokens per forward pass (default 512)"},
      {"--cache-type", "T", "latent cache element type: f32, f16 (default), bf16 or q8_0 (rows of whole blocks)"},
      {"--memory-budget", "SIZE", "bytes the session may use for weights, cache and activations (e.g. 6G; default: what the device has)"},
      {"--temp", "T", "sampling temperature (default 0: greedy)"},
      {"--top-k", "K", "keep the K most likely tokens (0: all)"},
      {"--top-p", "P", "nucleus sampling threshold (1: off)"},
      {"--min-p", "P", "drop tokens below P x the best token's probability (0: off)"},
      {"--repeat-penalty", "P", "penalise the last 64 tokens by P (1: off)"},
      {"--seed", "S", "random seed: the same seed on the same device gives the same text"},
      {"-t", "N", "CPU threads (default: physical cores)"},
      {"--logits-out", "FILE", "write the logits of every evaluated position as .npy [positions, vocab]"},
      {"--routing", "METHOD", "expert routing of a GGUF model: greedy, group_limited_greedy or noaux_tc (default: inferred)"},
      {"--no-bos", "", "do not start a text prompt with the BOS token"},
      {"--no-display-prompt", "", "print only the generated text, not the prompt"},
      {"--chat", "", "a conversation in the model's chat format: on a terminal, type a message per line (empty line "
                     "or Ctrl-D ends; Ctrl-C stops a reply, a second Ctrl-C exits); otherwise each line of standard "
                     "input is a message. A full context drops the oldest exchanges"},
      {"--system", "TEXT", "system message of a --chat conversation"},
      {"--chat-template", "NAME", chat_template_help()}}},
    run_model};

}  // namespace

const Command& run_command() { return kRun; }

}  // namespace moat::cli
