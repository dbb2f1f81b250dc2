// moat bench: prompt processing and token generation speed of a model on one or more
// devices, after llama-bench (runtime/bench.h measures; bench_report.h writes).
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "backends/device.h"
#include "backends/registry.h"
#include "frontend/models/deepseek_weights.h"
#include "samples/moat/bench_report.h"
#include "samples/moat/commands.h"
#include "samples/moat/demo_model.h"
#include "support/error.h"

#ifndef MOAT_BUILD_COMMIT
#define MOAT_BUILD_COMMIT ""
#endif

namespace moat::cli {

namespace {

// The devices to run on, in the order given ("all": every device the registry lists).
// Backends that are not available are noted in `notes`.
std::vector<std::string> pick_devices(const std::string& spec, std::vector<std::string>& notes) {
  const backends::DeviceReport report = backends::enumerate_devices();
  std::vector<std::string> known;
  for (const backends::DeviceInfo& d : report.devices) known.push_back(d.id);
  if (spec == "all") {
    for (const backends::BackendStatus& b : report.backends)
      if (!b.available) notes.push_back(cat(b.backend, " skipped (", b.detail, ")"));
    return known;
  }
  std::vector<std::string> picked;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t end = spec.find(',', start);
    if (end == std::string::npos) end = spec.size();
    const std::string id = spec.substr(start, end - start);
    start = end + 1;
    if (id == "all") user_error("--device: all stands alone; give all, or device ids separated by commas");
    if (id.empty()) user_error("--device: '", spec, "' has an empty device id; give all, or ids separated by commas (cpu,opencl:0)");
    if (std::find(known.begin(), known.end(), id) == known.end())
      user_error("--device: no device '", id, "' on this machine (available: ", join(known, ", "),
                 "); `moat devices` lists the devices and why a backend is not available");
    if (std::find(picked.begin(), picked.end(), id) == picked.end()) picked.push_back(id);
  }
  return picked;
}

// An empty directory for one device's cold kernel cache, removed with this object.
class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "moat-bench-XXXXXX").string();
    if (!::mkdtemp(pattern.data()))
      user_error("cannot create a temporary kernel cache directory (", pattern, "): ", std::strerror(errno),
                 "; set TMPDIR to a writable directory");
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

std::string utc_now() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// Opens every output file named by an option now, so that a bad path fails before the
// benchmark rather than after it.
std::vector<std::pair<std::string, std::ofstream>> open_outputs(const ParsedArgs& args) {
  std::vector<std::pair<std::string, std::ofstream>> out;
  for (const char* option : {"--json", "--md", "--svg"}) {
    if (!args.has(option)) continue;
    const std::string& path = args.value(option);
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    if (!file) user_error(option, ": cannot write '", path, "' (", std::strerror(errno), ")");
    out.emplace_back(option, std::move(file));
  }
  return out;
}

// -d's value: depths separated by commas ("0,4096"), each 0 or more.
std::vector<int64_t> parse_depths(const std::string& text) {
  std::string bad;
  const std::optional<std::vector<int64_t>> depths = parse_integer_list(text, 0, 1 << 24, bad);
  if (!depths)
    user_error("-d '", text, "': give depths (cached tokens before each test) as numbers separated by commas, e.g. -d 0,4096");
  return *depths;
}

int run_bench(const ParsedArgs& args) {
  runtime::BenchOptions options;
  options.n_prompt = args.integer("-p", 512, 0, 1 << 20);
  options.n_gen = args.integer("-n", 128, 0, 1 << 20);
  options.repetitions = static_cast<int>(args.integer("-r", 5, 1, 10000));
  if (args.has("-d")) options.depths = parse_depths(args.value("-d"));
  options.profile = args.has("--profile");
  backends::CpuOptions cpu;
  cpu.threads = static_cast<int>(args.integer("-t", 0, 0, 1024));
  if (options.n_prompt == 0 && options.n_gen == 0) user_error("-p 0 and -n 0 leave nothing to measure; give -p N or -n N above 0");
  std::vector<std::string> notes;
  const std::vector<std::string> ids = pick_devices(args.value_or("--device", "all"), notes);
  auto outputs = open_outputs(args);

  BenchReport report;
  report.model_filename = args.has("-m") ? args.value("-m") : demo_model_path();
  report.build_commit = MOAT_BUILD_COMMIT;
  {  // loaded once up front: a bad model fails before any device work; its sizes
    const models::DeepSeekModel model = models::load_deepseek(report.model_filename);
    for (const std::string& note : model.notes) std::cerr << "note: " << note << "\n";
    report.model = model.size();
    runtime::check_bench_options(model, options);
  }
  for (const std::string& note : notes) std::cerr << "note: " << note << "\n";

  double host_bandwidth = -1;  // bytes/s; measured when a device first needs it
  for (const std::string& id : ids) {
    std::unique_ptr<backends::Device> device = backends::open_device(id, cpu);
    DeviceBench& d = report.devices.emplace_back();
    d.info = device->properties().info;
    // a device that runs kernels on host threads (DeviceInfo::threads) takes --threads
    if (d.info.threads > 0) d.n_threads = cpu.threads > 0 ? cpu.threads : std::max(1, d.info.compute_units);
    if (device->properties().host_memory && host_bandwidth < 0) {
      std::cerr << "moat bench: measuring host memory bandwidth ...\n";
      host_bandwidth = runtime::measure_host_read_bandwidth(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    }
    d.bandwidth = runtime::device_bandwidth(device->properties(), host_bandwidth);
    std::cerr << "moat bench: " << id << " (" << d.info.name << ") ...\n";
    TempDir cold_cache;
    options.cold_cache_dir = cold_cache.path();
    d.test_time = utc_now();
    d.result = runtime::bench_device(report.model_filename, {}, *device, options);
  }

  const std::string markdown = bench_markdown(report), profile = bench_profile_markdown(report);
  std::cout << markdown << profile;
  for (auto& [option, file] : outputs) {
    const std::string text = option == "--json" ? bench_json(report) : option == "--md" ? markdown + profile : bench_svg(report);
    file << text;
    file.flush();
    if (!file) user_error(option, ": writing '", args.value(option), "' failed (", std::strerror(errno), ")");
  }
  return 0;
}

const Command kBench{
    {"bench", "[-m MODEL] [--device all|ID,...] [-p N] [-n N] [-d N,...] [-r N] [-t N] [--json F] [--md F] [--svg F] [--profile]",
     "benchmark prompt processing and generation on one or more devices (like llama-bench)",
     {{"-m", "MODEL", "model file (GGUF) or Hugging Face folder (default: the demo model, models/kjv-tiny.gguf)"},
      {"--device", "IDS", "all (default: every available device), or ids separated by commas"},
      {"-p", "N", "prompt tokens of the pp test (default 512; 0 skips it)"},
      {"-n", "N", "generated tokens of the tg test (default 128; 0 skips it)"},
      {"-d", "N,...", "depths: run each test after N cached tokens (default 0; a comma list runs each depth)"},
      {"-r", "N", "repetitions of each test (default 5)"},
      {"-t", "N", "CPU threads (default: one per physical core)"},
      {"--json", "F", "write the results as JSON (one object per device and test)"},
      {"--md", "F", "write the Markdown table to F too"},
      {"--svg", "F", "write an SVG bar chart of t/s per device"},
      {"--profile", "", "time every kernel of one prefill and one decode step"}},
     0,
     0,
     "For each device: pp N evaluates N prompt tokens in one pass; tg N decodes N tokens one\n"
     "at a time after a one-token prompt; both after -d cached tokens (filled untimed in\n"
     "passes of 512, as llama-bench's depth; 0: an empty cache). Each test runs once to warm up,\n"
     "then -r times; t/s is the mean ± sd over those runs. Also reported: load (model file to\n"
     "weights on the device), JIT compile time cold (an empty temporary kernel cache) and warm\n"
     "(a second session on that cache), peak memory (the most bytes of device buffers held at\n"
     "once: weights, cache windows, activations; on the CPU the weights are the model file's\n"
     "mapped pages; peak_rss_bytes in the JSON is the process's peak resident memory) and\n"
     "decode's share of memory bandwidth: weight bytes read per token (non-expert weights\n"
     "with the output matrix, one embedding row, each MoE layer's top-k routed and shared\n"
     "experts) x tokens/s, over the bandwidth measured on the host (CPU, OpenCL CPU devices)\n"
     "or specified by the device (CUDA, HIP; unknown for OpenCL GPUs). Cold means moatless'\n"
     "kernel cache is empty; a driver's own cache (PoCL's kcache: POCL_KERNEL_CACHE=0 turns it\n"
     "off) may still be warm.\n\n"
     "The JSON also has, per token of each test, the bytes copied host -> device and device ->\n"
     "host, the kernel launches and the device allocations (h2d_bytes_per_token, ...).\n\n"
     "The table goes to stdout; --md, --json and --svg write files as well; --profile adds\n"
     "per-kernel tables (each launch synchronised, so profiled time exceeds plain time)."},
    run_bench};

}  // namespace

const Command& bench_command() { return kBench; }

}  // namespace moat::cli
