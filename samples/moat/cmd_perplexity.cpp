// moat perplexity: how well a model predicts a text (lower is better), on a device.
// The method is runtime/perplexity.h's: non-overlapping windows, each from an empty
// cache, every position but the first scored.
#include <chrono>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "runtime/perplexity.h"
#include "samples/moat/commands.h"
#include "samples/moat/placement_options.h"
#include "samples/moat/run_setup.h"
#include "support/error.h"

namespace moat::cli {

namespace {

int run_perplexity(const ParsedArgs& args) {
  if (!args.has("-f")) user_error("moat perplexity needs -f FILE, the text to score");
  const std::string text = read_option_file("-f", args.value("-f"));
  const int64_t batch = args.integer("--batch", 512, 1, 1 << 20);
  RunSetup setup;
  open_run(args, true, setup);
  const std::vector<int32_t> ids = setup.tokenizer->encode(text, false);
  runtime::Session& session = *setup.session;
  const int64_t window = args.integer("--window", session.context(), 2, session.context());
  session.prepare(window, batch, models::LogitRows::all);
  if (const int64_t last = static_cast<int64_t>(ids.size()) % window; last >= 1) {
    session.prepare(last, batch, models::LogitRows::all);  // the shorter last window's passes, compiled before timing
  }
  const auto start = std::chrono::steady_clock::now();
  const int32_t bos = !args.has("--no-bos") && setup.tokenizer->add_bos() ? setup.tokenizer->bos() : -1;
  const runtime::PerplexityResult r = runtime::perplexity(
      session, ids, window, batch, bos,
      [&setup](int64_t done, int64_t total) { setup.progress.update("score", done, total); });
  setup.progress.clear();
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const std::string device = setup.device_label();
  if (args.has("--json")) {
    nlohmann::json j = {{"model", setup.model_path}, {"file", args.value("-f")}, {"device", device},
                        {"perplexity", r.perplexity()},  {"scored_tokens", r.scored_tokens},
                        {"windows", r.windows},          {"window", window},
                        {"nll_sum", r.nll_sum},          {"seconds", seconds},
                        {"bos", bos >= 0}};
    std::cout << j.dump(2) << "\n";
  } else {
    std::printf("perplexity %.4f over %lld tokens (%lld windows of %lld) on %s in %.1f s\n", r.perplexity(),
                static_cast<long long>(r.scored_tokens), static_cast<long long>(r.windows),
                static_cast<long long>(window), device.c_str(), seconds);
  }
  return 0;
}

const Command kPerplexity{
    {"perplexity", "[-m MODEL] -f FILE [--device ID[,ID...]] [--split layers[:R,...]] [--moe-device ID] [--n-moe-device N] [--mpi pipeline|expert] [--ctx N] [--window N] [--batch K] [--cache-type T] [--memory-budget SIZE] [-t N] [--no-bos] [--json]",
     "perplexity of a model on a text file",
     with_placement_options({{"-m", "MODEL", "model file (GGUF) or Hugging Face folder (default: the demo model)"},
      {"-f", "FILE", "the text to score (UTF-8), tokenized without BOS"},
      {"--ctx", "N", "context length (default: the model's, capped to memory)"},
      {"--window", "N", "ids per window (default: the context)"},
      {"--batch", "K", "tokens per forward pass (default 512)"},
      {"--cache-type", "T", "latent cache element type: f32, f16 (default), bf16 or q8_0 (rows of whole blocks)"},
      {"--memory-budget", "SIZE", "bytes the session may use for weights, cache and activations (e.g. 6G; default: what the device has); with several devices, each device's"},
      {"-t", "N", "CPU threads"},
      {"--routing", "METHOD", "expert routing of a GGUF model (default: inferred)"},
      {"--no-bos", "", "windows without the BOS token, even when the model adds one"},
      {"--json", "", "print the result as JSON"}}, true),
     0,
     0,
     "Method: the text's ids (no BOS) are cut into non-overlapping windows of --window ids, each\n"
     "evaluated from an empty cache. When the model adds BOS (as llama.cpp's perplexity does), a\n"
     "window runs as [BOS] + its ids but the last and every id is scored; with --no-bos, or a model\n"
     "without BOS, a window runs as its ids and every id but its first is scored. Perplexity =\n"
     "exp(mean negative log-likelihood), in double precision.\n"},
    run_perplexity};

}  // namespace

const Command& perplexity_command() { return kPerplexity; }

}  // namespace moat::cli
