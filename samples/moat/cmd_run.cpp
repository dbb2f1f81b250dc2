// moat run: a model on a device. A text prompt (-p / -f) streams the generated text as
// it is sampled; a prompt of token ids (--tokens) prints the generated ids; --chat runs
// a conversation in the model's chat format (chat_session.cpp). Every path ends with one
// stats line on stderr.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <random>

#include "runtime/generate.h"
#include "runtime/sampler.h"
#include "samples/moat/chat_session.h"
#include "samples/moat/commands.h"
#include "samples/moat/placement_options.h"
#include "samples/moat/run_setup.h"
#include "support/error.h"
#include "support/npy.h"

namespace moat::cli {

namespace {

constexpr int64_t kDefaultTextTokens = 128;  // -n for text prompts when not given

// A seed from the operating system's entropy, small enough to retype (below 2^32).
uint64_t random_seed() { return std::random_device{}(); }

std::vector<int32_t> parse_tokens(const std::string& text) {
  std::string bad;
  const std::optional<std::vector<int64_t>> ids = parse_integer_list(text, 0, INT32_MAX, bad);
  if (!ids) user_error("--tokens: '", bad, "' is not a token id (give non-negative integers separated by commas)");
  return std::vector<int32_t>(ids->begin(), ids->end());
}

// llama.cpp's defaults (common/common.h): temperature 0.8, top-k 40, top-p 0.95, min-p
// 0.05, penalties off over the last 64 tokens, a random seed (-1 or no --seed).
runtime::SamplingOptions sampling_options(const ParsedArgs& args) {
  runtime::SamplingOptions sampling;
  sampling.temperature = args.number("--temp", 0.8, 0.0, 1e6);
  sampling.top_k = args.integer("--top-k", 40, 0, 1 << 30);
  sampling.top_p = args.number("--top-p", 0.95, 0.0, 1.0);
  sampling.min_p = args.number("--min-p", 0.05, 0.0, 1.0);
  sampling.repeat_penalty = args.number("--repeat-penalty", 1.0, 0.0, 1e6);
  sampling.frequency_penalty = args.number("--frequency-penalty", 0.0, -1e6, 1e6);
  sampling.presence_penalty = args.number("--presence-penalty", 0.0, -1e6, 1e6);
  sampling.repeat_last_n = args.integer("--repeat-last-n", 64, -1, 1 << 30);
  const int64_t seed = args.integer("--seed", -1, -1, INT64_MAX);
  sampling.seed = seed >= 0 ? static_cast<uint64_t>(seed) : random_seed();
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

// How tokens are chosen, for the stats line: the seed repeats a sampled run.
std::string sampling_note(const runtime::SamplingOptions& sampling) {
  return sampling.temperature == 0 ? "greedy" : cat("seed ", sampling.seed);
}

int run_once(const ParsedArgs& args) {
  const int prompt_kinds = args.has("-p") + args.has("-f") + args.has("--tokens");
  if (prompt_kinds != 1) user_error("moat run needs one prompt: -p TEXT, -f FILE or --tokens ID,ID,... (see moat run --help)");
  runtime::SamplingOptions sampling = sampling_options(args);
  const int64_t batch = args.integer("--batch", 512, 1, 1 << 20);
  // -1: until the end of sequence or a full context
  const int64_t n_asked = args.integer("-n", -1, -1, 1 << 30);
  if (args.has("--logits-out")) check_writable("--logits-out", args.value("--logits-out"));
  RunSetup setup;
  setup.draft_tokens = draft_option(args);
  setup.tokens_hint = "give the prompt as token ids with --tokens ID,ID,...";
  setup.sampling_note = sampling_note(sampling);
  open_run(args, !args.has("--tokens"), setup);
  sampling.seed = setup.agree(sampling.seed);  // --mpi: every rank samples what rank 0 does
  setup.sampling_note = sampling_note(sampling);
  runtime::Sampler sampler(sampling);
  const Prompt prompt = read_prompt(args, setup);

  runtime::Session& session = *setup.session;
  const int64_t prompt_tokens = static_cast<int64_t>(prompt.ids.size());
  if (prompt_tokens > session.context())
    user_error("the prompt (", prompt_tokens, " tokens) passes the context of ", session.context(),
               " tokens; shorten it or raise --ctx");
  const int64_t room = session.context() - prompt_tokens;  // tokens the context has left to generate
  const int64_t wanted = !args.has("-n") ? (prompt.is_text ? kDefaultTextTokens : 0) : n_asked == -1 ? INT64_MAX : n_asked;
  const int64_t n_gen = std::min(wanted, room);
  if (n_asked >= 0 && n_asked > room)
    std::cerr << "moat: note: the prompt (" << prompt_tokens << " tokens) plus -n " << n_asked << " passes the context of "
              << session.context() << " tokens; generating until it is full\n";
  session.prepare(prompt_tokens, batch,
                  args.has("--logits-out") ? models::LogitRows::all : models::LogitRows::last);
  setup.progress.disable();  // text streams from here on

  runtime::GenerationOptions options;
  options.max_tokens = n_gen;
  options.batch = batch;
  options.draft_tokens = setup.draft_tokens;
  if (!args.has("--ignore-eos")) options.stop_ids = stop_tokens(setup);
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
  if (args.has("--logits-out") && setup.reports()) {
    const int64_t vocab = setup.model->vocab_size();
    write_npy_f32(args.value("--logits-out"), {static_cast<int64_t>(logits.size()) / vocab, vocab}, logits);
  }
  const bool context_ended = stats.stop == runtime::StopReason::context_full ||
                             (stats.stop == runtime::StopReason::limit && n_gen < wanted);
  if (!setup.reports()) return 0;  // --mpi: rank 0 says it
  if (context_ended)
    std::cerr << "moat: stopped: the context of " << session.context() << " tokens is full (raise --ctx)\n";
  print_run_stats(setup, stats);
  return 0;
}

int run_model(const ParsedArgs& args) {
  if (!args.has("--chat")) return run_once(args);
  if (args.has("--mpi")) user_error("--chat reads the terminal, which only one rank has; --mpi runs one-shot prompts");
  if (args.has("--tokens") || args.has("-f") || args.has("--logits-out") || args.has("--ignore-eos"))
    user_error("--chat takes its turns as text (-p for the first one, then the terminal or standard input); "
               "--tokens, -f, --logits-out and --ignore-eos are for one-shot runs");
  ChatOptions chat;
  chat.sampling = sampling_options(args);
  chat.batch = args.integer("--batch", 512, 1, 1 << 20);
  const int64_t n_asked = args.integer("-n", kDefaultChatTokens, -1, 1 << 30);
  if (n_asked == 0) user_error("-n 0 leaves --chat no reply; give a count, or -1 for replies that end at the model's end of turn");
  chat.max_tokens = n_asked == -1 ? INT64_MAX : n_asked;  // -1: a reply ends at its end of turn or a full context
  chat.system = args.value_or("--system", "");
  chat.first_message = args.value_or("-p", "");
  chat.format_name = args.value_or("--chat-template", "");
  RunSetup setup;
  setup.draft_tokens = draft_option(args);
  setup.sampling_note = sampling_note(chat.sampling);
  open_run(args, true, setup, [&chat](const RunSetup& s) { check_chat_format(s, chat); });
  return run_chat(setup, chat);
}

const Command kRun{
    {"run",
     "[-m MODEL] [--device ID[,ID...]] [--split layers[:R,...]] [--moe-device ID] [--n-moe-device N] [--mpi pipeline|expert] (-p TEXT | -f FILE | --tokens ID,ID,... | --chat) [-n N] [--ctx N] [--batch K] [--cache-type T] [--memory-budget SIZE] "
     "[--temp T] [--top-k K] [--top-p P] [--min-p P] [--repeat-penalty P] [--repeat-last-n N] [--presence-penalty P] "
     "[--frequency-penalty P] [--seed S] [--ignore-eos] [--spec mtp] [--draft N] [--draft-model FILE] [-t N] [--logits-out FILE.npy] "
     "[--routing METHOD] [--no-bos] [--no-display-prompt] [--system TEXT] [--chat-template NAME]",
     "generate text (or token ids, or logits) with a model on a device; --chat for a conversation",
     with_placement_options({{"-m", "MODEL", "model file (GGUF) or Hugging Face folder (default: the demo model, models/kjv-tiny.gguf)"},
      {"-p", "TEXT", "prompt text (with --chat: the first message)"},
      {"-f", "FILE", "read the prompt text from FILE"},
      {"--tokens", "IDS", "prompt as comma-separated token ids; prints the generated ids"},
      {"-n", "N", "tokens to generate at most (default: 128 for text, 0 for --tokens, 256 per --chat reply; -1: until the "
                  "end of sequence or a full context). Past the context: generates until it is full, and says so"},
      {"--ctx", "N", "context length in tokens (default: the model's, capped to half the available memory)"},
      {"--batch", "K", "prompt tokens per forward pass (default 512)"},
      {"--cache-type", "T", "latent cache element type: f32, f16 (default), bf16 or q8_0 (rows of whole blocks)"},
      {"--memory-budget", "SIZE", "bytes the session may use for weights, cache and activations (e.g. 6G; default: what the device has); with several devices, each device's"},
      {"--temp", "T", "sampling temperature (default 0.8, as llama.cpp; 0: greedy, the most likely token)"},
      {"--top-k", "K", "keep the K most likely tokens (default 40; 0: all)"},
      {"--top-p", "P", "nucleus sampling threshold (default 0.95; 1: off)"},
      {"--min-p", "P", "drop tokens below P x the best token's probability (default 0.05; 0: off)"},
      {"--repeat-penalty", "P", "divide the logits of the last --repeat-last-n tokens by P (default 1: off)"},
      {"--repeat-last-n", "N", "tokens the penalties look back over (default 64; 0: off; -1: all)"},
      {"--presence-penalty", "P", "subtract P from the logit of each token among the last --repeat-last-n (default 0)"},
      {"--frequency-penalty", "P", "subtract P x its count from each such token's logit (default 0)"},
      {"--seed", "S", "random seed (default -1: a new one each run, printed in the stats line); the same seed on the "
                      "same device gives the same text"},
      {"--ignore-eos", "", "keep generating past the model's end-of-sequence token"},
      {"--spec", "mtp", "speculative decoding: the model's MTP layer drafts tokens, one pass of the model verifies them "
                        "(the same text as without it when greedy, the same distribution when sampling; needs a file "
                        "with MTP layers, nextn_predict_layers > 0, or DeepSeek-V4's apart: --draft-model). Default: none"},
      {"--draft", "N", "tokens --spec mtp drafts per pass (default 1; 1..16)"},
      {"--draft-model", "FILE", "the MTP layer's own file where the model keeps it apart: llama.cpp's mtp-*.gguf "
                                "(convert_hf_to_gguf.py --mtp) beside a DeepSeek-V4 GGUF"},
      {"-t", "N", "CPU threads (default: physical cores)"},
      {"--logits-out", "FILE", "write the logits of every evaluated position as .npy [positions, vocab]"},
      {"--routing", "METHOD", "expert routing of a GGUF model: greedy, group_limited_greedy or noaux_tc (default: inferred)"},
      {"--no-bos", "", "do not start a text prompt with the BOS token"},
      {"--no-display-prompt", "", "print only the generated text, not the prompt"},
      {"--chat", "", "a conversation in the model's chat format: on a terminal, type a message per line (empty line "
                     "or Ctrl-D ends; Ctrl-C stops a reply, a second Ctrl-C exits); otherwise each line of standard "
                     "input is a message. A full context drops the oldest exchanges"},
      {"--system", "TEXT", "system message of a --chat conversation"},
      {"--chat-template", "NAME", chat_template_help()},
      {"--list-devices", "", "list the devices (as moat devices) and exit"}}, true)},
    run_model};

}  // namespace

const Command& run_command() { return kRun; }

}  // namespace moat::cli
