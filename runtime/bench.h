// The measuring loop of `moat bench` for one device, after llama-bench: prompt
// processing (pp N: N prompt tokens, in forward passes of at most the batch) and token
// generation (tg N: N decode steps of one token each after a one-token prompt), each at
// one or more depths (llama-bench's -d: the tests run after that many cached tokens),
// timed over several repetitions after a warm-up, plus the costs of getting there (load,
// JIT compile: through the kernel cache as found, or cold and warm), the device memory
// it took and what crossed between host and device.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "backends/device.h"
#include "frontend/model.h"
#include "runtime/kernel_profile.h"
#include "runtime/placement.h"
#include "runtime/stage_link.h"

namespace moat::runtime {

struct BenchOptions {
  // Each list is run in full, every combination a test (llama-bench's -p -n -d -b):
  // for each batch, for each depth, pp of each n_prompt then tg of each n_gen. A 0 in
  // n_prompt or n_gen is skipped.
  std::vector<int64_t> n_prompt = {512};  // tokens of the pp tests
  std::vector<int64_t> n_gen = {128};     // decode steps of the tg tests
  std::vector<int64_t> depths = {0};      // cached tokens before each test (filled untimed, in passes of the batch)
  std::vector<int64_t> batches = {512};   // the most tokens one forward pass evaluates (pp, depth fill)
  int repetitions = 5;                    // timed runs of each test, after one untimed warm-up
  // The kernel cache the session compiles through: the user's (warm when an earlier run
  // filled it), or empty for memory only.
  std::filesystem::path kernel_cache_dir;
  // cold: kernel_cache_dir must be an empty directory; a first session compiles every
  // kernel into it (compile_ms: cold), a second loads them back (compile_warm_ms).
  bool cold = false;
  bool profile = false;    // also time each kernel of one prefill and one decode step
  // Sequences decoded together (llama-batched-bench's -npl): for each value above 1,
  // every tg test again with that many sequences in one pass per step (a session of
  // several sequences, continuous batching's passes), at depth 0.
  std::vector<int64_t> parallel = {1};
  // Speculative decoding (runtime/speculative.h): for each value above 0, every tg test
  // again as greedy generation with that many tokens drafted per pass by the model's
  // MTP layer (the model is loaded with it, LoadOptions::draft), at depth 0.
  std::vector<int64_t> draft = {};
  // Across processes (--mpi): every rank runs the same tests over the link; the devices
  // given are the session's (placement.h, SessionOptions::link). expert_shares: --mpi expert.
  StageLink* link = nullptr;
  bool expert_shares = false;
};

struct BenchTest {
  int64_t n_prompt = 0, n_gen = 0;  // one of them is 0
  int64_t depth = 0;                // cached tokens before the test
  int64_t n_batch = 512;            // the most tokens per forward pass
  int64_t sequences = 1;            // tg with several sequences: each step decodes one token of each
  // tg by speculative decoding: tokens drafted per pass (0: plain), and over the timed
  // runs the drafts' acceptance and the tokens each verification pass yielded
  int64_t draft = 0;
  double acceptance = 0, accepted_per_pass = 0;
  std::vector<double> samples_ns;   // one per repetition: nanoseconds for the whole test
  std::optional<KernelProfile> profile;  // one pass (prefill) or one decode step, when asked
  // Per token of the timed runs, averaged over them: bytes host -> device and device ->
  // host, kernel launches and device allocations (backends::DeviceTraffic).
  double h2d_bytes_per_token = 0, d2h_bytes_per_token = 0, launches_per_token = 0, allocs_per_token = 0;
  // Bytes handed between the session's devices per token (several devices: placement.h).
  double moved_bytes_per_token = 0;

  int64_t tokens() const { return (n_prompt + n_gen) * sequences; }
  // "pp512" | "tg128", with " @ d4096" at a depth (llama-bench's names), "tg128 x8" for
  // 8 sequences, "tg128 mtp2" drafting 2 tokens per pass
  std::string name() const;
};

struct BenchResult {
  double load_ms = 0;     // model file read + weights on the device, packed where its kernels want (first session), ms
  // Lowering + JIT compile (or kernel cache loads) of every pass the tests use, ms:
  // through the cache as found (options.cold: an empty cache). Never inside the timings.
  double compile_ms = 0;
  std::optional<double> compile_warm_ms;  // options.cold: the same from the populated cache, in a second session
  uint64_t kernels_compiled = 0;   // kernel cache misses during compile_ms (0: every kernel came from the cache)
  uint64_t kernels_cached = 0;     // kernel cache hits (memory or disk) during compile_ms
  uint64_t peak_bytes = 0;     // the device's MemoryLedger peak: weights + bound cache windows + activations
  uint64_t peak_rss_bytes = 0; // the process's peak resident memory while benchmarking; 0 when unknown
  std::vector<BenchTest> tests;  // in the order run; skipped tests absent
};

// UserError naming -p / -n / -d when a test needs more tokens than the model's training
// context (pp: depth + n_prompt; tg: depth + the one-token prompt + n_gen), or when no
// test is left (every -p and -n is 0).
void check_bench_options(const models::Model& model, const BenchOptions& options);

// The tokens the session needs for every test of `options` (the largest depth plus the
// largest test).
int64_t bench_context(const BenchOptions& options);

// Loads `model_path` and benchmarks it on `device`: check_bench_options, then UserError
// from the model, a compile or the device.
BenchResult bench_device(const std::string& model_path, const models::LoadOptions& load, backends::Device& device,
                         const BenchOptions& options);
// The same over several devices as `placement` says (the traffic and peak memory of all
// of them, added; BenchTest::moved_bytes_per_token).
BenchResult bench_devices(const std::string& model_path, const models::LoadOptions& load,
                          std::span<backends::Device* const> devices, const PlacementSpec& placement, const BenchOptions& options);

// Mean and sample standard deviation (n - 1; 0 for fewer than two values).
struct MeanSd {
  double mean = 0, sd = 0;
};
MeanSd mean_sd(const std::vector<double>& values);

}  // namespace moat::runtime
