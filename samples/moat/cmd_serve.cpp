// moat serve: an OpenAI-compatible HTTP server with continuous batching
// (samples/moat/serve_server.h over runtime/batch_scheduler.h). SIGTERM or SIGINT
// drains: new requests get 503, those in flight finish, then the process exits 0.
#include <algorithm>
#include <bit>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <iomanip>
#include <iostream>
#include <pthread.h>
#include <random>
#include <sstream>
#include <thread>

#include "runtime/batch_scheduler.h"
#include "samples/moat/commands.h"
#include "samples/moat/placement_options.h"
#include "samples/moat/run_setup.h"
#include "samples/moat/serve_server.h"
#include "support/error.h"

namespace moat::cli {

namespace {

// SIGTERM and SIGINT are taken by one thread (sigwait), never by a handler in whichever
// thread the kernel picks: blocked here, before any other thread starts, so every
// thread inherits the mask.
sigset_t block_stop_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

std::optional<tok::ChatFormat> serve_chat_format(const RunSetup& setup, const ParsedArgs& args) {
  if (args.has("--chat-template")) return tok::chat_format_named(args.value("--chat-template"), "--chat-template");
  const std::string& jinja = setup.tokenizer->chat_template();
  std::optional<tok::ChatFormat> format = jinja.empty() ? std::nullopt : tok::detect_chat_format(jinja);
  if (!format)
    std::cerr << "moat: warning: " << setup.model_path
              << (jinja.empty() ? " has no chat template" : "'s chat template is not a DeepSeek format moatless knows")
              << ": /v1/chat/completions answers 400 (give --chat-template NAME); /v1/completions works\n";
  return format;
}

std::string base_name(const std::string& path) {
  std::string p = path;
  while (p.size() > 1 && p.back() == '/') p.pop_back();
  const size_t slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

// Compiles the passes the scheduler takes before the server listens (prompt chunks of
// up to the session's batch, as ServeServer's scheduler takes them): one progress line
// for them all, not one per pass. A drafting session's passes compile at first use.
void warm_up(runtime::Session& session, ProgressBar& bar) {
  const auto start = std::chrono::steady_clock::now();
  const runtime::ProgressFn per_pass = session.progress();
  session.set_progress(nullptr);
  int64_t passes = 0;
  try {
    passes = runtime::BatchScheduler::prepare_passes(session, session.max_batch(), [&](int64_t done, int64_t total) {
      if (per_pass) bar.update("warm-up", done, total);
    });
  } catch (...) {
    session.set_progress(per_pass);
    throw;
  }
  session.set_progress(per_pass);
  bar.clear();
  if (passes == 0) return;
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const auto chunk = std::bit_floor(static_cast<uint64_t>(std::min(session.max_batch(), session.context())));
  std::ostringstream line;
  line << "moat: warm-up: " << passes << " passes compiled in " << std::fixed << std::setprecision(1) << seconds
       << " s (decode passes of 1-" << std::min(session.sequences(), session.max_batch())
       << " sequences, prompt chunks of up to " << chunk << " tokens; --no-warmup: each at first use)\n";
  std::cerr << line.str();
}

int run_serve(const ParsedArgs& args) {
  const sigset_t stop_signals = block_stop_signals();
  RunSetup setup;
  setup.draft_tokens = draft_option(args);
  // Speculative decoding drafts for one stream: its session holds one sequence.
  setup.sequences = args.integer("--parallel", setup.draft_tokens > 0 ? 1 : 4, 1, 256);
  if (setup.draft_tokens > 0 && setup.sequences > 1)
    user_error("--spec mtp serves one stream at a time (requests queue for it): give --parallel 1, or leave out --spec");
  ServeOptions options;
  options.host = args.value_or("--host", "127.0.0.1");
  options.port = static_cast<int>(args.integer("--port", 8080, 0, 65535));
  options.api_key = args.value_or("--api-key", "");
  options.max_queue = args.integer("--max-queue", 64, 0, 1 << 20);
  options.max_body = static_cast<size_t>(args.integer("--max-body", 1 << 20, 1024, int64_t{1} << 30));
  // A connection holds a thread while its request waits or runs; past 512 connections
  // wait for a thread in httplib's own queue.
  options.http_threads = static_cast<int>(std::clamp<int64_t>(options.max_queue + setup.sequences + 4, 8, 512));
  open_run(args, true, setup);
  options.model_name = args.value_or("--alias", base_name(setup.model_path));
  options.chat_format = serve_chat_format(setup, args);
  options.stop_ids = stop_tokens(setup);
  options.draft_tokens = setup.draft_tokens;

  if (!args.has("--no-warmup")) warm_up(*setup.session, setup.progress);

  ServeServer server(*setup.tokenizer, *setup.session, options);
  const int port = server.bind();
  std::cerr << "moat: serving " << options.model_name << " on http://" << options.host << ":" << port << " ("
            << setup.sequences << " sequences of " << setup.session->context() << " tokens, queue "
            << options.max_queue << ")\n";
  std::printf("listening on http://%s:%d\n", options.host.c_str(), port);  // for scripts (--port 0)
  std::fflush(stdout);

  std::thread stopper([&] {
    int signal = 0;
    sigwait(&stop_signals, &signal);
    std::cerr << "moat: " << (signal == SIGTERM ? "SIGTERM" : "SIGINT")
              << ": finishing the requests in flight, taking no more\n";
    server.drain_and_stop();
  });
  server.listen();
  // The listener closed without a signal (it failed): wake the stopper so it can end.
  pthread_kill(stopper.native_handle(), SIGTERM);
  stopper.join();
  std::cerr << "moat: stopped\n";
  return 0;
}

}  // namespace

const Command& serve_command() {
  static const Command command{
      {"serve",
       "[-m MODEL] [--device ID[,ID...]] [--split layers[:R,...]] [--moe-device ID] [--n-moe-device N] [--host ADDR] [--port N] [--parallel N] [--ctx N] [--api-key KEY] [--no-warmup] [--spec mtp [--draft N] [--draft-model FILE]]",
       "OpenAI-compatible HTTP server with continuous batching",
       with_placement_options({{"-m", "MODEL", "model file (GGUF) or Hugging Face folder (default: the demo model)"},
        {"--host", "ADDR", "address to listen on (default 127.0.0.1: this machine only)"},
        {"--port", "N", "port (default 8080; 0: any free port, printed)"},
        {"--parallel", "N", "sequences decoded together in one pass (default 4); each has its own --ctx"},
        {"--ctx", "N", "context length of each sequence in tokens (default: the model's, capped to the memory)"},
        {"--batch", "K", "prompt tokens per forward pass (default 512)"},
        {"--cache-type", "T", "latent cache element type: f32, f16 (default), bf16 or q8_0"},
        {"--memory-budget", "SIZE", "bytes the session may use for weights, cache and activations"},
        {"--api-key", "KEY", "requests to /v1/* and /metrics need 'Authorization: Bearer KEY' (401 otherwise)"},
        {"--alias", "NAME", "the model's name in /v1/models and responses (default: the file name)"},
        {"--chat-template", "NAME", "chat format when the model's template is not recognised"},
        {"--max-queue", "N", "requests waiting for a sequence at most (default 64; more get 429)"},
        {"--max-body", "BYTES", "largest request body (default 1048576; larger get 413)"},
        {"--no-warmup", "", "listen at once: each pass compiles when first taken (by default every pass the batches take "
                            "compiles before the server listens, so that no request waits for a compilation)"},
        {"--routing", "METHOD", "expert routing of a GGUF model: greedy, group_limited_greedy or noaux_tc"},
        {"--spec", "mtp", "speculative decoding with the model's MTP layer, one stream at a time (--parallel 1, the "
                          "default with it): the same text as without it when greedy, the same distribution when sampling"},
        {"--draft", "N", "tokens --spec mtp drafts per pass (default 1)"},
        {"--draft-model", "FILE", "the MTP layer's own file where the model keeps it apart: llama.cpp's mtp-*.gguf "
                                  "(convert_hf_to_gguf.py --mtp) beside a DeepSeek-V4 GGUF"},
        {"-t", "N", "CPU threads (default: physical cores)"}}, false),
       0,
       0,
       "Routes: POST /v1/chat/completions and /v1/completions (\"stream\": true for server-sent events), GET /v1/models,\n"
       "/health and /metrics (Prometheus). Sampling fields: temperature, top_p, max_tokens, stop, seed,\n"
       "presence_penalty, frequency_penalty, and llama-server's top_k, min_p, repeat_penalty, ignore_eos.\n"
       "Errors are OpenAI's JSON: 400 bad request, 401 key, 404 route, 413 body, 429 queue full, 503 draining.\n"
       "SIGTERM / SIGINT: requests in flight finish, new ones get 503, then exit 0.\n"},
      run_serve};
  return command;
}

}  // namespace moat::cli
