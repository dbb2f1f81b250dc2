#include "runtime/bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <span>

#include "jit/kernel_cache.h"
#include "runtime/session.h"
#include "support/error.h"
#include "support/memory.h"

namespace moat::runtime {

namespace {

using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point start) {
  return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
}

// `n` token ids spread over the vocabulary (a fixed sequence: every run reads the same
// embedding rows), as llama-bench feeds random tokens.
std::vector<int32_t> bench_tokens(int64_t n, int64_t vocab) {
  std::vector<int32_t> out(static_cast<size_t>(n));
  uint64_t state = 0x9E3779B97F4A7C15ull;
  for (int32_t& t : out) {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    t = static_cast<int32_t>((state >> 33) % static_cast<uint64_t>(std::max<int64_t>(vocab, 1)));
  }
  return out;
}

// Nanoseconds of the pp test: `prompt` in one pass on an empty cache, logits for its
// last position (as llama-bench). Compilation that happens inside (a shape met for the
// first time) is not counted.
double run_pp(Session& session, std::span<const int32_t> prompt) {
  session.rewind(0);
  const double setup_before = session.stats().setup_ms();
  const auto start = Clock::now();
  session.evaluate(prompt, static_cast<int64_t>(prompt.size()), models::LogitRows::last);
  return (ms_since(start) - (session.stats().setup_ms() - setup_before)) * 1e6;
}

// Nanoseconds of the tg test: tokens[1..] decoded one at a time after the one-token
// prompt tokens[0] (untimed).
double run_tg(Session& session, std::span<const int32_t> tokens) {
  session.rewind(0);
  session.evaluate(tokens.first(1), 1);
  const double setup_before = session.stats().setup_ms();
  const auto start = Clock::now();
  for (size_t i = 1; i < tokens.size(); ++i) session.evaluate(tokens.subspan(i, 1), 1);
  return (ms_since(start) - (session.stats().setup_ms() - setup_before)) * 1e6;
}

struct Inputs {
  std::vector<int32_t> prompt;     // pp: n_prompt tokens
  std::vector<int32_t> generated;  // tg: 1 + n_gen tokens
};

// One untimed run of every test: compiles every pass the tests use.
void warm_up(Session& session, const Inputs& in) {
  if (!in.prompt.empty()) run_pp(session, in.prompt);
  if (in.generated.size() > 1) run_tg(session, in.generated);
}

KernelProfile profile_prefill(Session& session, std::span<const int32_t> prompt) {
  KernelProfile profile;
  session.rewind(0);
  ProfileScope scope(profile);
  session.evaluate(prompt, static_cast<int64_t>(prompt.size()), models::LogitRows::last);
  return profile;
}

KernelProfile profile_decode_step(Session& session, std::span<const int32_t> tokens) {
  KernelProfile profile;
  session.rewind(0);
  session.evaluate(tokens.first(1), 1);
  ProfileScope scope(profile);
  session.evaluate(tokens.subspan(1, 1), 1);
  return profile;
}

}  // namespace

void check_bench_options(const models::DeepSeekModel& model, const BenchOptions& options) {
  const int64_t context = model.hparams.n_ctx_train;
  if (options.n_prompt > context)
    user_error("-p ", options.n_prompt, " passes the model's context of ", context, " tokens; give -p ", context, " or less");
  if (options.n_gen > 0 && options.n_gen + 1 > context)
    user_error("-n ", options.n_gen, " (after a one-token prompt) passes the model's context of ", context,
               " tokens; give -n ", context - 1, " or less");
}

std::string BenchTest::name() const { return n_prompt > 0 ? cat("pp", n_prompt) : cat("tg", n_gen); }

MeanSd mean_sd(const std::vector<double>& values) {
  MeanSd out;
  if (values.empty()) return out;
  for (double v : values) out.mean += v;
  out.mean /= static_cast<double>(values.size());
  if (values.size() < 2) return out;
  double squares = 0;
  for (double v : values) squares += (v - out.mean) * (v - out.mean);
  out.sd = std::sqrt(squares / static_cast<double>(values.size() - 1));
  return out;
}

BenchResult bench_device(const std::string& model_path, const models::LoadOptions& load, backends::Device& device,
                         const BenchOptions& options) {
  reset_peak_resident_memory();
  device.memory().reset_peak();
  BenchResult result;
  const auto load_start = Clock::now();
  const models::DeepSeekModel model = models::load_deepseek(model_path, load);
  check_bench_options(model, options);
  const int64_t context = std::max<int64_t>({options.n_prompt, options.n_gen + 1, 1});
  Inputs in;
  in.prompt = bench_tokens(options.n_prompt, model.hparams.n_vocab);
  if (options.n_gen > 0) in.generated = bench_tokens(options.n_gen + 1, model.hparams.n_vocab);

  {  // cold: every kernel compiled into an empty cache
    jit::KernelCache cold(options.cold_cache_dir);
    Session first(model, device, cold, context);
    result.load_ms = ms_since(load_start);
    warm_up(first, in);
    result.load_ms += first.stats().pack_ms;  // weights made ready for the device's kernels
    result.compile_ms = first.stats().compile_ms;
  }
  // warm: a new cache over the same directory, as a second process would start
  jit::KernelCache warm(options.cold_cache_dir);
  Session session(model, device, warm, context);
  warm_up(session, in);
  result.compile_warm_ms = session.stats().compile_ms;

  if (!in.prompt.empty()) {
    BenchTest& pp = result.tests.emplace_back();
    pp.n_prompt = options.n_prompt;
    for (int r = 0; r < options.repetitions; ++r) pp.samples_ns.push_back(run_pp(session, in.prompt));
    if (options.profile) pp.profile = profile_prefill(session, in.prompt);
  }
  if (!in.generated.empty()) {
    BenchTest& tg = result.tests.emplace_back();
    tg.n_gen = options.n_gen;
    for (int r = 0; r < options.repetitions; ++r) tg.samples_ns.push_back(run_tg(session, in.generated));
    if (options.profile) tg.profile = profile_decode_step(session, in.generated);
  }
  result.peak_bytes = device.memory().peak();
  result.peak_rss_bytes = peak_resident_memory();
  return result;
}

}  // namespace moat::runtime
