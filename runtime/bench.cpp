#include "runtime/bench.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>

#include "runtime/generate.h"
#include "runtime/kernel_cache.h"
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

// Fills the cache with the test's depth (untimed): the first time in passes of
// `batch` tokens, later by rewinding to it (the rows past it are overwritten), or
// again where the cut is too long to be exact (Model::cache_rewind_limit).
struct Depth {
  std::vector<int32_t> tokens;
  int64_t batch = 512;
  bool filled = false;

  void prepare(Session& session) {
    const int64_t n = static_cast<int64_t>(tokens.size());
    if (filled && session.cached_tokens() >= n && session.rewind(n) == n) return;
    session.rewind(0);
    if (n > 0) session.evaluate(tokens, batch, models::LogitRows::last);
    filled = true;
  }
};

struct Measured {
  double ns = 0;                            // the timed part
  backends::DeviceTraffic::Snapshot traffic;  // during it, every device of the session
  uint64_t moved_bytes = 0;                 // between the session's devices during it
};

// The devices one session runs on: their traffic and memory together.
class DeviceGroup {
 public:
  // Null entries (another rank's devices) are left out of the sums.
  explicit DeviceGroup(std::span<backends::Device* const> devices) : devices_(devices.begin(), devices.end()) {
    std::erase(devices_, nullptr);
    all_ = {devices.begin(), devices.end()};
  }
  backends::DeviceTraffic::Snapshot traffic() const {
    backends::DeviceTraffic::Snapshot sum;
    for (backends::Device* d : devices_) {
      const backends::DeviceTraffic::Snapshot t = d->traffic();
      sum.h2d_bytes += t.h2d_bytes, sum.d2h_bytes += t.d2h_bytes, sum.launches += t.launches, sum.allocations += t.allocations;
    }
    return sum;
  }
  void reset_peak() {
    for (backends::Device* d : devices_) d->memory().reset_peak();
  }
  uint64_t peak() const {  // the devices' peaks added (each at its own moment)
    uint64_t sum = 0;
    for (backends::Device* d : devices_) sum += d->memory().peak();
    return sum;
  }
  std::span<backends::Device* const> devices() const { return all_; }  // as given, for the session

 private:
  std::vector<backends::Device*> devices_, all_;
};

// Measured from `before` to now.
Measured measured(double ns, const DeviceGroup& devices, const backends::DeviceTraffic::Snapshot& before, const Session& session,
                  uint64_t moved_before) {
  return {ns, devices.traffic() - before, session.moved_bytes_total() - moved_before};
}

// The pp test: `prompt` in passes of at most `batch` tokens after the depth, logits for
// its last position (as llama-bench). Compilation that happens inside (a shape met for
// the first time) is not counted.
Measured run_pp(Session& session, DeviceGroup& device, Depth& depth, std::span<const int32_t> prompt, int64_t batch) {
  depth.prepare(session);
  const double setup_before = session.stats().setup_ms();
  const auto traffic_before = device.traffic();
  const uint64_t moved_before = session.moved_bytes_total();
  const auto start = Clock::now();
  session.evaluate(prompt, batch, models::LogitRows::last);
  const double ms = ms_since(start);
  return measured((ms - (session.stats().setup_ms() - setup_before)) * 1e6, device, traffic_before, session, moved_before);
}

// The tg test: tokens[1..] decoded one at a time after the depth and the one-token
// prompt tokens[0] (untimed).
Measured run_tg(Session& session, DeviceGroup& device, Depth& depth, std::span<const int32_t> tokens) {
  depth.prepare(session);
  session.evaluate(tokens.first(1), 1);
  const double setup_before = session.stats().setup_ms();
  const auto traffic_before = device.traffic();
  const uint64_t moved_before = session.moved_bytes_total();
  const auto start = Clock::now();
  for (size_t i = 1; i < tokens.size(); ++i) session.evaluate(tokens.subspan(i, 1), 1);
  const double ms = ms_since(start);
  return measured((ms - (session.stats().setup_ms() - setup_before)) * 1e6, device, traffic_before, session, moved_before);
}

// A parallel test's tokens for each sequence: sequence s's token at step i is the test's
// tokens rotated by s times a stride coprime with their count (7 or the next such), so up
// to that many sequences each decode a stream of their own (as a server's requests do:
// each token routed to its own experts, each row its own attention) rather than the same
// token as every other sequence, which would let the batch share its experts.
struct SequenceStreams {
  std::span<const int32_t> tokens;
  size_t stride = 7;
  explicit SequenceStreams(std::span<const int32_t> t) : tokens(t) {
    while (std::gcd(stride, tokens.size()) != 1) ++stride;
  }
  int32_t token_of(int64_t s, size_t i) const { return tokens[(i + stride * static_cast<size_t>(s)) % tokens.size()]; }
};

// The tg test over `sequences` sequences: each gets a one-token prompt (untimed), then
// every step decodes the next token of each of them in one pass; `steps` of them (all the
// test's tokens but the prompt by default).
Measured run_tg_parallel(Session& session, DeviceGroup& device, std::span<const int32_t> tokens, int64_t sequences,
                         size_t steps = SIZE_MAX) {
  const SequenceStreams streams(tokens);
  std::vector<std::array<int32_t, 1>> next(static_cast<size_t>(sequences));
  std::vector<SequenceTokens> work;
  for (int64_t s = 0; s < sequences; ++s) {
    session.rewind(s, 0);
    next[static_cast<size_t>(s)] = {streams.token_of(s, 0)};
    work.push_back({s, next[static_cast<size_t>(s)]});
  }
  session.evaluate_sequences(work);
  const double setup_before = session.stats().setup_ms();
  const auto traffic_before = device.traffic();
  const uint64_t moved_before = session.moved_bytes_total();
  const auto start = Clock::now();
  for (size_t i = 1; i < tokens.size() && i <= steps; ++i) {
    for (int64_t s = 0; s < sequences; ++s) next[static_cast<size_t>(s)] = {streams.token_of(s, i)};
    session.evaluate_sequences(work);
  }
  const double ms = ms_since(start);
  return measured((ms - (session.stats().setup_ms() - setup_before)) * 1e6, device, traffic_before, session, moved_before);
}

// The tg test by speculative decoding: greedy generation of tokens.size() - 1 tokens
// after the one-token prompt tokens[0] (untimed), drafting `draft` tokens per pass. The
// model chooses the tokens, so the drafts can be accepted.
Measured run_tg_draft(Session& session, DeviceGroup& device, std::span<const int32_t> tokens, int64_t draft,
                      GenerationStats* stats) {
  session.rewind(0);
  Sampler greedy(SamplingOptions{});
  std::vector<int32_t> history;
  GenerationOptions options;
  options.max_tokens = static_cast<int64_t>(tokens.size()) - 1;
  options.batch = 1;
  options.draft_tokens = draft;
  const auto traffic_before = device.traffic();
  const uint64_t moved_before = session.moved_bytes_total();
  *stats = generate(session, greedy, tokens.first(1), history, options, [](int32_t) {});
  return measured(stats->generate_ms * 1e6, device, traffic_before, session, moved_before);
}

KernelProfile profile_parallel_step(Session& session, DeviceGroup& device, std::span<const int32_t> tokens,
                                    int64_t sequences) {
  run_tg_parallel(session, device, tokens, sequences, 1);
  const SequenceStreams streams(tokens);
  std::vector<std::array<int32_t, 1>> next(static_cast<size_t>(sequences));
  std::vector<SequenceTokens> work;
  for (int64_t s = 0; s < sequences; ++s) {
    next[static_cast<size_t>(s)] = {streams.token_of(s, 2)};
    work.push_back({s, next[static_cast<size_t>(s)]});
  }
  KernelProfile profile;
  ProfileScope scope(profile);
  session.evaluate_sequences(work);
  return profile;
}

struct Inputs {
  std::vector<std::vector<int32_t>> prompts;    // pp: one per -p above 0
  std::vector<std::vector<int32_t>> generated;  // tg: 1 + n_gen tokens, one per -n above 0
};

// One untimed run of every test with every batch at depth 0: compiles every pass the
// tests use (a depth adds only the passes of filling it, compiled there).
void warm_up(Session& session, DeviceGroup& device, const Inputs& in, const std::vector<int64_t>& batches) {
  Depth none;
  for (int64_t batch : batches)
    for (const std::vector<int32_t>& prompt : in.prompts) run_pp(session, device, none, prompt, batch);
  for (const std::vector<int32_t>& tokens : in.generated) run_tg(session, device, none, tokens);
}

KernelProfile profile_prefill(Session& session, Depth& depth, std::span<const int32_t> prompt, int64_t batch) {
  KernelProfile profile;
  depth.prepare(session);
  ProfileScope scope(profile);
  session.evaluate(prompt, batch, models::LogitRows::last);
  return profile;
}

KernelProfile profile_decode_step(Session& session, Depth& depth, std::span<const int32_t> tokens) {
  KernelProfile profile;
  depth.prepare(session);
  session.evaluate(tokens.first(1), 1);
  ProfileScope scope(profile);
  session.evaluate(tokens.subspan(1, 1), 1);
  return profile;
}

// Adds one timed run to `test`, its traffic averaged per token over the runs so far.
void record(BenchTest& test, const Measured& m) {
  const double runs = static_cast<double>(test.samples_ns.size());
  const double tokens = static_cast<double>(test.tokens());
  auto average = [&](double mean, uint64_t count) { return (mean * runs + static_cast<double>(count) / tokens) / (runs + 1); };
  test.h2d_bytes_per_token = average(test.h2d_bytes_per_token, m.traffic.h2d_bytes);
  test.d2h_bytes_per_token = average(test.d2h_bytes_per_token, m.traffic.d2h_bytes);
  test.launches_per_token = average(test.launches_per_token, m.traffic.launches);
  test.allocs_per_token = average(test.allocs_per_token, m.traffic.allocations);
  test.moved_bytes_per_token = average(test.moved_bytes_per_token, m.moved_bytes);
  test.samples_ns.push_back(m.ns);
}

int64_t max_of(const std::vector<int64_t>& values) {
  return values.empty() ? 0 : *std::max_element(values.begin(), values.end());
}

}  // namespace

void check_bench_options(const models::Model& model, const BenchOptions& options) {
  const int64_t context = model.training_context();
  for (int64_t d : options.depths) {
    if (d < 0) user_error("-d ", d, ": a depth is a number of cached tokens, 0 or more");
    if (d >= context)
      user_error("-d ", d, " leaves no room for a test in the model's context of ", context, " tokens; give -d ",
                 std::max<int64_t>(context - 1, 0), " or less");
  }
  if (max_of(options.n_prompt) == 0 && max_of(options.n_gen) == 0)
    user_error("-p 0 and -n 0 leave nothing to measure; give -p N or -n N above 0");
  for (int64_t b : options.batches)
    if (b < 1) user_error("-b ", b, ": a batch is 1 token or more");
  for (int64_t depth : options.depths) {
    const std::string after = depth > 0 ? cat(" after -d ", depth) : "";
    const std::string or_depth = depth > 0 ? " or a smaller -d" : "";
    for (int64_t p : options.n_prompt)
      if (depth + p > context)
        user_error("-p ", p, after, " passes the model's context of ", context, " tokens; give -p ",
                   std::max<int64_t>(context - depth, 0), " or less", or_depth);
    for (int64_t n : options.n_gen)
      if (n > 0 && depth + n + 1 > context)
        user_error("-n ", n, " (after a one-token prompt", after, ") passes the model's context of ", context,
                   " tokens; give -n ", std::max<int64_t>(context - depth - 1, 0), " or less", or_depth);
  }
}

int64_t bench_context(const BenchOptions& options) {
  return max_of(options.depths) + std::max<int64_t>({max_of(options.n_prompt), max_of(options.n_gen) + 1, 1});
}

std::string BenchTest::name() const {
  std::string test = n_prompt > 0 ? cat("pp", n_prompt) : cat("tg", n_gen);
  if (sequences > 1) test += cat(" x", sequences);
  if (draft > 0) test += cat(" mtp", draft);
  return depth > 0 ? cat(test, " @ d", depth) : test;
}

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
  backends::Device* const one[] = {&device};
  return bench_devices(model_path, load, one, {}, options);
}

BenchResult bench_devices(const std::string& model_path, const models::LoadOptions& load,
                          std::span<backends::Device* const> placed_on, const PlacementSpec& placement, const BenchOptions& options) {
  reset_peak_resident_memory();
  DeviceGroup device(placed_on);
  device.reset_peak();
  BenchResult result;
  const auto load_start = Clock::now();
  models::LoadOptions loading = load;
  loading.draft = loading.draft || max_of(options.draft) > 0;  // the MTP layer, for the speculative tests
  const std::unique_ptr<models::Model> owned = models::open_model(model_path, loading);
  const models::Model& model = *owned;
  check_bench_options(model, options);
  SessionOptions session_options;
  session_options.context = bench_context(options);
  session_options.max_batch = std::clamp<int64_t>(max_of(options.batches), 1, session_options.context);
  session_options.placement = placement;
  session_options.link = options.link;
  if (options.expert_shares) session_options.across = SessionOptions::Across::expert;
  Inputs in;
  for (int64_t p : options.n_prompt)
    if (p > 0) in.prompts.push_back(bench_tokens(p, model.vocab_size()));
  for (int64_t n : options.n_gen)
    if (n > 0) in.generated.push_back(bench_tokens(n + 1, model.vocab_size()));

  // The session that compiles first: its load and compile times are the ones reported.
  auto first_session = [&](KernelCache& cache) {
    auto session = std::make_unique<Session>(model, device.devices(), cache, session_options);
    result.load_ms = ms_since(load_start);
    warm_up(*session, device, in, options.batches);
    result.load_ms += session->stats().pack_ms;  // weights made ready for the device's kernels
    result.compile_ms = session->stats().compile_ms;
    result.kernels_compiled = cache.stats().compiles;
    result.kernels_cached = cache.stats().hits();
    return session;
  };
  std::unique_ptr<KernelCache> cache;
  std::unique_ptr<Session> session;
  if (options.cold) {
    {  // every kernel compiled into an empty cache
      KernelCache cold(options.kernel_cache_dir);
      first_session(cold);
    }
    // warm: a new cache over the same directory, as a second process would start
    cache = std::make_unique<KernelCache>(options.kernel_cache_dir);
    session = std::make_unique<Session>(model, device.devices(), *cache, session_options);
    warm_up(*session, device, in, options.batches);
    result.compile_warm_ms = session->stats().compile_ms;
  } else {
    cache = std::make_unique<KernelCache>(options.kernel_cache_dir);
    session = first_session(*cache);
  }

  for (int64_t batch : options.batches)
    for (int64_t d : options.depths) {
      Depth depth{bench_tokens(d, model.vocab_size()), batch};
      for (const std::vector<int32_t>& prompt : in.prompts) {
        BenchTest& pp = result.tests.emplace_back();
        pp.n_prompt = static_cast<int64_t>(prompt.size());
        pp.depth = d;
        pp.n_batch = batch;
        if (d > 0) run_pp(*session, device, depth, prompt, batch);  // warm-up: this depth's passes
        for (int r = 0; r < options.repetitions; ++r) record(pp, run_pp(*session, device, depth, prompt, batch));
        if (options.profile) pp.profile = profile_prefill(*session, depth, prompt, batch);
      }
      for (const std::vector<int32_t>& tokens : in.generated) {
        BenchTest& tg = result.tests.emplace_back();
        tg.n_gen = static_cast<int64_t>(tokens.size()) - 1;
        tg.depth = d;
        tg.n_batch = batch;
        if (d > 0) run_tg(*session, device, depth, tokens);
        for (int r = 0; r < options.repetitions; ++r) record(tg, run_tg(*session, device, depth, tokens));
        if (options.profile) tg.profile = profile_decode_step(*session, depth, tokens);
      }
    }
  // Several sequences: a session of as many as the largest count, its tg tests at depth 0.
  const int64_t most = max_of(options.parallel);
  if (most > 1 && !in.generated.empty()) {
    SessionOptions several = session_options;
    several.sequences = most;
    several.max_batch = std::max(several.max_batch, most);
    Session batched(model, device.devices(), *cache, several);
    for (int64_t p : options.parallel) {
      if (p < 2) continue;
      for (const std::vector<int32_t>& tokens : in.generated) {
        BenchTest& tg = result.tests.emplace_back();
        tg.n_gen = static_cast<int64_t>(tokens.size()) - 1;
        tg.sequences = p;
        tg.n_batch = several.max_batch;
        run_tg_parallel(batched, device, tokens, p);  // warm-up: compiles the passes
        for (int r = 0; r < options.repetitions; ++r) record(tg, run_tg_parallel(batched, device, tokens, p));
        if (options.profile && tokens.size() > 2) tg.profile = profile_parallel_step(batched, device, tokens, p);
      }
    }
  }
  // Speculative decoding: a session with the draft module, its tg tests at depth 0.
  if (max_of(options.draft) > 0 && !in.generated.empty()) {
    SessionOptions drafting = session_options;
    drafting.draft = true;
    Session speculative(model, device.devices(), *cache, drafting);
    for (int64_t draft : options.draft) {
      if (draft < 1) continue;
      for (const std::vector<int32_t>& tokens : in.generated) {
        BenchTest& tg = result.tests.emplace_back();
        tg.n_gen = static_cast<int64_t>(tokens.size()) - 1;
        tg.draft = draft;
        GenerationStats stats;
        run_tg_draft(speculative, device, tokens, draft, &stats);  // warm-up: compiles the passes
        int64_t drafted = 0, accepted = 0, passes = 0;
        for (int r = 0; r < options.repetitions; ++r) {
          record(tg, run_tg_draft(speculative, device, tokens, draft, &stats));
          drafted += stats.drafted, accepted += stats.accepted, passes += stats.draft_passes;
        }
        tg.acceptance = drafted > 0 ? static_cast<double>(accepted) / static_cast<double>(drafted) : 0;
        tg.accepted_per_pass = passes > 0 ? 1.0 + static_cast<double>(accepted) / static_cast<double>(passes) : 1;
      }
    }
  }
  result.peak_bytes = device.peak();
  result.peak_rss_bytes = peak_resident_memory();
  return result;
}

}  // namespace moat::runtime
