// moat bench: prompt processing and token generation speed of a model on one or more
// devices, after llama-bench (runtime/bench.h measures; bench_report.h writes).
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <optional>
#include <thread>
#include <tuple>

#include "backends/device.h"
#include "backends/registry.h"
#include "frontend/models/deepseek_weights.h"
#include "samples/moat/bench_report.h"
#include "samples/moat/commands.h"
#include "samples/moat/demo_model.h"
#include "samples/moat/placement_options.h"
#include "samples/moat/run_setup.h"
#include "samples/moat/temp_dir.h"
#include "runtime/bandwidth.h"
#include "runtime/kernel_cache.h"
#include "support/error.h"

#ifndef MOAT_BUILD_COMMIT
#define MOAT_BUILD_COMMIT ""
#endif

namespace moat::cli {

namespace {

// The devices to run on, in the order given ("all": every device the registry lists);
// an entry "A+B" is one model placed over those devices (placement_options.h). Backends
// that are not available are noted in `notes`.
std::vector<std::string> split_on(const std::string& text, char separator) {
  std::vector<std::string> items;
  size_t start = 0;
  while (true) {
    const size_t end = text.find(separator, start);
    items.push_back(text.substr(start, end == std::string::npos ? std::string::npos : end - start));
    if (end == std::string::npos) return items;
    start = end + 1;
  }
}

std::vector<std::vector<backends::DeviceInfo>> pick_devices(const std::string& spec, std::vector<std::string>& notes) {
  const backends::DeviceReport report = backends::enumerate_devices();
  std::vector<std::string> known;
  for (const backends::DeviceInfo& d : report.devices) known.push_back(d.id);
  std::vector<std::vector<backends::DeviceInfo>> out;
  if (spec == "all") {
    for (const backends::BackendStatus& b : report.backends)
      if (!b.available) notes.push_back(cat(b.backend, " skipped (", b.detail, ")"));
    for (const backends::DeviceInfo& d : report.devices) out.push_back({d});
    return out;
  }
  auto info_of = [&](const std::string& id) {
    if (id == "all") user_error("--device: all stands alone; give all, or device ids separated by commas");
    if (id.empty()) user_error("--device: '", spec, "' has an empty device id; give all, or ids separated by commas (cpu,opencl:0)");
    if (std::find(known.begin(), known.end(), id) == known.end())
      user_error("--device: no device '", id, "' on this machine (available: ", join(known, ", "),
                 "); `moat devices` lists the devices and why a backend is not available");
    return *std::find_if(report.devices.begin(), report.devices.end(), [&](const auto& d) { return d.id == id; });
  };
  std::vector<std::string> picked;
  for (const std::string& entry : split_on(spec, ',')) {
    if (std::find(picked.begin(), picked.end(), entry) != picked.end()) continue;
    picked.push_back(entry);
    std::vector<backends::DeviceInfo> group;
    for (const std::string& id : split_on(entry, '+')) group.push_back(info_of(id));
    out.push_back(std::move(group));
  }
  return out;
}

// What a placement gives each device: "cpu: layers 0-1 | opencl:0: layers 2-3, routed experts".
std::string describe_placement(const DevicePlacement& placement) {
  std::vector<std::string> parts;
  int64_t next = 0;
  for (size_t d = 0; d < placement.ids.size(); ++d) {
    const int64_t n = placement.spec.layers_per_device.empty() ? 0 : placement.spec.layers_per_device[d];
    std::vector<std::string> what;
    if (n > 0) what.push_back(n == 1 ? cat("layer ", next) : cat("layers ", next, "-", next + n - 1));
    next += n;
    if (placement.spec.moe_device == static_cast<int>(d))
      what.push_back(placement.spec.moe_layers >= 0 ? cat("routed experts of the first ", placement.spec.moe_layers, " layers")
                                                    : "routed experts");
    parts.push_back(cat(placement.ids[d], ": ", what.empty() ? "nothing" : join(what, ", ")));
  }
  return join(parts, " | ");
}

std::string utc_now() {
  std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// -p, -n, -d, -b, -t: numbers in [min, max] separated by commas; `fallback` when absent.
std::vector<int64_t> integer_list(const ParsedArgs& args, const char* option, std::vector<int64_t> fallback, int64_t min,
                                  int64_t max, const char* what, const char* example) {
  if (!args.has(option)) return fallback;
  const std::string& text = args.value(option);
  std::string bad;
  const std::optional<std::vector<int64_t>> values = parse_integer_list(text, min, max, bad);
  if (!values)
    user_error(option, " ", text, ": ", bad.empty() ? std::string("an empty item") : cat("'", bad, "'"), " is not ", what,
               " in [", min, ", ", max, "]; give numbers separated by commas, e.g. ", option, " ", example);
  return *values;
}

enum class Format { md, csv, json, jsonl, svg };

Format output_format(const ParsedArgs& args) {
  const std::string value = args.value_or("-o", "md");
  if (value == "md") return Format::md;
  if (value == "csv") return Format::csv;
  if (value == "json") return Format::json;
  if (value == "jsonl") return Format::jsonl;
  user_error("-o ", value, ": not an output format; give md (the default), csv, json or jsonl");
}

std::string formatted(const BenchReport& report, Format format) {
  switch (format) {
    case Format::md: return bench_markdown(report) + bench_profile_markdown(report);
    case Format::csv: return bench_csv(report);
    case Format::json: return bench_json(report);
    case Format::jsonl: return bench_jsonl(report);
    case Format::svg: return bench_svg(report);
  }
  return "";
}

// Where the results go: stdout in one form (-o, or the one file option given as -),
// and the files of --json, --md and --svg, opened now so that a bad path fails before
// the benchmark rather than after it.
struct Outputs {
  Format stdout_format = Format::md;
  std::vector<std::tuple<std::string, Format, std::ofstream>> files;  // option, form, file
};

Outputs open_outputs(const ParsedArgs& args) {
  Outputs out;
  out.stdout_format = output_format(args);
  std::string to_stdout = args.has("-o") ? "-o" : "";
  for (auto [option, format] : {std::pair{"--json", Format::json}, {"--md", Format::md}, {"--svg", Format::svg}}) {
    if (!args.has(option)) continue;
    const std::string& path = args.value(option);
    if (path == "-") {
      if (!to_stdout.empty())
        user_error(to_stdout, to_stdout == "-o" ? "" : " -", " and ", option,
                   " - both write to stdout; give one of them (a file name writes a file)");
      to_stdout = option;
      out.stdout_format = format;
      continue;
    }
    std::ofstream file(path, std::ios::binary | std::ios::trunc);
    if (!file) user_error(option, ": cannot write '", path, "' (", std::strerror(errno), ")");
    out.files.emplace_back(option, format, std::move(file));
  }
  return out;
}

// -p / -n values, default or given, capped so that every test fits the model's context
// after the largest depth, each with a note on stderr (as `moat run -n` past the
// context generates until it is full and says so); duplicates left by capping go.
void cap_to_context(const ParsedArgs& args, int64_t context, runtime::BenchOptions& options) {
  const int64_t room = context - *std::max_element(options.depths.begin(), options.depths.end());
  if (room <= 0) return;  // check_bench_options names -d
  auto cap = [&](const char* option, std::vector<int64_t>& values, int64_t most, const char* test) {
    std::vector<int64_t> capped;
    for (int64_t v : values) {
      if (v > most)
        std::cerr << "note: " << option << " " << v << (args.has(option) ? "" : " (the default)")
                  << " does not fit the model's context of " << context << " tokens" << (room < context ? " after -d" : "")
                  << "; running " << test << most << " instead" << (args.has(option) ? "" : cat(" (give ", option, " to choose)"))
                  << "\n";
      const int64_t fitted = std::min(v, most);
      if (std::find(capped.begin(), capped.end(), fitted) == capped.end()) capped.push_back(fitted);
    }
    values = capped;
  };
  cap("-p", options.n_prompt, room, "pp");
  cap("-n", options.n_gen, room - 1, "tg");
}

int run_bench(const ParsedArgs& args) {
  runtime::BenchOptions options;
  options.n_prompt = integer_list(args, "-p", {512}, 0, 1 << 20, "a number of prompt tokens", "16,32");
  options.n_gen = integer_list(args, "-n", {128}, 0, 1 << 20, "a number of generated tokens", "8,128");
  options.depths = integer_list(args, "-d", {0}, 0, 1 << 24, "a depth (cached tokens)", "0,4096");
  options.batches = integer_list(args, "-b", {512}, 1, 1 << 20, "a batch (tokens per forward pass)", "128,512");
  const std::vector<int64_t> threads = integer_list(args, "-t", {0}, 0, 1024, "a thread count", "1,2,4");
  options.repetitions = static_cast<int>(args.integer("-r", 5, 1, 10000));
  options.profile = args.has("--profile");
  options.cold = args.has("--cold");
  options.parallel = integer_list(args, "--parallel", {1}, 1, 256, "a number of sequences", "1,4,8");
  if (spec_option(args)) options.draft = integer_list(args, "--draft", {1}, 1, 16, "a number of drafted tokens", "1,2");
  const std::string draft_file = draft_model_option(args);
  auto any = [](const std::vector<int64_t>& v) { return std::any_of(v.begin(), v.end(), [](int64_t x) { return x > 0; }); };
  if (!any(options.n_prompt) && !any(options.n_gen))
    user_error("-p 0 and -n 0 leave nothing to measure; give -p N or -n N above 0");
  Outputs outputs = open_outputs(args);

  // From here on, a signal removes the temporary kernel caches of --cold before it ends
  // the process. Before any device is opened: their threads inherit the blocked signals.
  remove_temp_dirs_on_signals();
  std::vector<std::string> notes;
  const std::vector<std::vector<backends::DeviceInfo>> devices = pick_devices(args.value_or("--device", "all"), notes);
  int64_t layers = 0;

  BenchReport report;
  report.model_filename = args.has("-m") ? args.value("-m") : demo_model_path();
  report.build_commit = MOAT_BUILD_COMMIT;
  report.cpu_info = backends::describe_host_cpu().name;
  report.cold = options.cold;
  {  // loaded once up front: a bad model fails before any device work; its sizes
    const std::unique_ptr<models::Model> model =
        models::open_model(report.model_filename, {.draft = !options.draft.empty(), .draft_file = draft_file});
    for (const std::string& note : model->load_notes()) std::cerr << "note: " << note << "\n";
    report.model = model->size();
    layers = model->layers();
    if (!options.draft.empty() && !model->has_draft()) user_error("--spec mtp: ", model->why_no_draft());
    cap_to_context(args, model->training_context(), options);
    runtime::check_bench_options(*model, options);
  }
  for (const std::string& note : notes) std::cerr << "note: " << note << "\n";

  const std::filesystem::path cache_dir =
      runtime::default_kernel_cache_dir(std::getenv("MOAT_CACHE_DIR"), std::getenv("XDG_CACHE_HOME"), std::getenv("HOME"));
  std::optional<double> host_bandwidth;  // bytes/s; when a device first needs it
  auto host_read_bandwidth = [&]() {
    if (host_bandwidth) return *host_bandwidth;
    const runtime::HostBandwidth b = runtime::cached_host_read_bandwidth(cache_dir, args.has("--remeasure-bandwidth"), [] {
      std::cerr << "moat bench: measuring host memory bandwidth ...\n";
      return runtime::measure_host_read_bandwidth(static_cast<int>(std::max(1u, std::thread::hardware_concurrency())));
    });
    char gbs[32];
    std::snprintf(gbs, sizeof gbs, "%.1f", b.bytes_per_s / 1e9);
    std::cerr << "moat bench: host memory bandwidth " << gbs << " GB/s, "
              << (b.cached ? "measured " + b.measured_at : std::string("measured now"));
    if (!b.file.empty()) std::cerr << (b.cached ? " (" : " (kept in ") << b.file.string() << "; --remeasure-bandwidth measures it again)";
    std::cerr << "\n";
    host_bandwidth = b.bytes_per_s;
    return *host_bandwidth;
  };

  std::optional<RankPlacement> ranks;  // --mpi: one row, the ranks' placement
  if (args.has("--mpi")) {
    if (std::any_of(options.parallel.begin(), options.parallel.end(), [](int64_t p) { return p > 1; }) || !options.draft.empty())
      user_error("moat bench --mpi runs one sequence without --spec; leave out --parallel and --spec");
    backends::CpuOptions cpu;
    cpu.threads = static_cast<int>(threads[0]);
    ranks = start_ranks(args, layers, cpu);
    options.link = ranks->link.get();
    options.expert_shares = ranks->mode == "expert";
    DeviceBench& d = report.devices.emplace_back();
    const backends::DeviceProperties& properties = ranks->device->properties();
    d.info = properties.info;
    d.info.id = cat(join(ranks->placement.ids, ","), " x", ranks->link->ranks(), " ", ranks->mode);
    d.info.name = cat("rank 0: ", properties.info.name);
    if (properties.info.threads > 0) d.n_threads = cpu.threads > 0 ? cpu.threads : std::max(1, properties.info.compute_units);
    std::vector<std::string> parts;
    for (size_t r = 0; r < ranks->placement.ids.size(); ++r) {
      const auto& counts = ranks->placement.spec.layers_per_device;
      int64_t first = 0;
      for (size_t q = 0; q < r && q < counts.size(); ++q) first += counts[q];
      parts.push_back(counts.empty() ? cat("rank ", r, " ", ranks->placement.ids[r], ": every layer, experts ", r, " of ", ranks->placement.ids.size())
                                     : cat("rank ", r, " ", ranks->placement.ids[r], ": layers ", first, "-", first + counts[r] - 1));
    }
    d.placement = cat("--mpi ", ranks->mode, ": ", join(parts, " | "));
    options.kernel_cache_dir = cache_dir;
    d.test_time = utc_now();
    d.result = runtime::bench_devices(report.model_filename, {.draft_file = draft_file}, ranks->session_devices(), ranks->placement.spec, options);
    if (ranks->link->rank() > 0) return 0;  // rank 0 reports
  }
  for (const std::vector<backends::DeviceInfo>& group : devices) {
    if (ranks) break;
    std::vector<std::string> ids;
    bool host_threads = false;  // a device that runs kernels on host threads runs once per -t value
    for (const backends::DeviceInfo& listed : group) ids.push_back(listed.id), host_threads = host_threads || listed.threads > 0;
    const std::string label = join(ids, "+");
    for (size_t t = 0; t < (host_threads ? threads.size() : 1); ++t) {
      backends::CpuOptions cpu;
      cpu.threads = static_cast<int>(threads[t]);
      std::optional<DevicePlacement> placement;
      if (group.size() > 1) placement = placement_for(ids, args, layers);
      std::vector<std::unique_ptr<backends::Device>> opened;
      for (const std::string& id : placement ? placement->ids : ids) opened.push_back(backends::open_device(id, cpu));
      DeviceBench& d = report.devices.emplace_back();
      std::vector<std::string> names, backend_names;
      for (const auto& device : opened) {
        const backends::DeviceProperties& properties = device->properties();
        names.push_back(properties.info.name);
        backend_names.push_back(properties.info.backend);
        if (properties.info.threads > 0) d.n_threads = cpu.threads > 0 ? cpu.threads : std::max(1, properties.info.compute_units);
      }
      d.info = opened[0]->properties().info;
      if (placement) {  // one row for the placement: ids and names joined; bandwidth unknown (several memories)
        d.info.id = join(placement->ids, "+");
        d.info.name = join(names, " + ");
        d.info.backend = join(backend_names, "+");
        d.placement = describe_placement(*placement);
      } else {
        const backends::DeviceProperties& properties = opened[0]->properties();
        d.bandwidth = runtime::device_bandwidth(properties, properties.host_memory ? host_read_bandwidth() : 0);
      }
      std::cerr << "moat bench: " << d.info.id << " (" << d.info.name << ")"
                << (d.n_threads > 0 ? cat(", ", d.n_threads, d.n_threads == 1 ? " thread" : " threads") : "")
                << (placement ? cat("; ", d.placement) : "") << " ...\n";
      std::optional<TempDir> cold_cache;
      if (options.cold) cold_cache.emplace("moat-bench-");
      options.kernel_cache_dir = options.cold ? cold_cache->path() : cache_dir;
      d.test_time = utc_now();
      std::vector<backends::Device*> devices_of_row;
      for (const auto& device : opened) devices_of_row.push_back(device.get());
      d.result = runtime::bench_devices(report.model_filename, {.draft_file = draft_file}, devices_of_row, placement ? placement->spec : runtime::PlacementSpec{},
                                        options);
      const runtime::BenchResult& r = d.result;
      std::cerr << "moat bench: " << d.info.id << ": compile " << static_cast<int64_t>(r.compile_ms) << " ms ("
                << r.kernels_compiled << " kernels compiled, " << r.kernels_cached << " from the kernel cache"
                << (options.cold ? cat("; warm: ", static_cast<int64_t>(r.compile_warm_ms.value_or(0)), " ms")
                                 : cache_dir.empty() ? std::string(", in memory only") : cat(" in ", cache_dir.string()))
                << "), not counted in t/s\n";
    }
  }

  for (auto& [option, format, file] : outputs.files) {
    file << formatted(report, format);
    file.flush();
    if (!file) user_error(option, ": writing '", args.value(option), "' failed (", std::strerror(errno), ")");
  }
  std::cout << formatted(report, outputs.stdout_format);
  std::cout.flush();
  if (!std::cout) user_error("writing the results to stdout failed");
  return 0;
}

const Command kBench{
    {"bench",
     "[-m MODEL] [--device all|ID[+ID],...] [--split layers[:R,...]] [--moe-device ID] [--n-moe-device N] [--mpi pipeline|expert] [-p N,...] [-n N,...] [-d N,...] [-b N,...] [-t N,...] [-r N] [-o md|csv|json|jsonl]\n"
     "       [--json F] [--md F] [--svg F] [--cold] [--remeasure-bandwidth] [--profile] [--parallel N,...] [--spec mtp [--draft N,...] [--draft-model FILE]]",
     "benchmark prompt processing and generation on one or more devices (like llama-bench)",
     {{"-m", "MODEL", "model file (GGUF) or Hugging Face folder (default: the demo model, models/kjv-tiny.gguf)"},
      {"--device", "IDS", "all (default: every available device), or ids separated by commas; A+B is one row of the "
                          "model placed over A and B (--split, --moe-device)"},
      {"--split", "layers[:R,...]", "rows A+B: contiguous layers per device in proportion R1:R2:... (default: equal "
                                    "shares to the devices other than --moe-device)"},
      {"--moe-device", "ID", "rows A+B: the routed experts on ID (added to the row's devices if absent)"},
      {"--n-moe-device", "N", "rows A+B: only the first N layers' routed experts on --moe-device"},
      {"--mpi", "pipeline|expert", "under mpirun: one row of the ranks running the model together, each on its --device "
                                   "(one for all, or one per rank); see moat run --help"},
      {"--mpi-timeout", "S", "with --mpi: seconds a rank waits for another before it stops with an error (default 30)"},
      {"-p", "N,...", "prompt tokens of the pp tests (default 512, capped to the context; 0 skips pp)"},
      {"-n", "N,...", "generated tokens of the tg tests (default 128, capped to the context; 0 skips tg)"},
      {"-d", "N,...", "depths: run each test after N cached tokens (default 0)"},
      {"-b", "N,...", "batch: the most tokens one forward pass evaluates, pp and depth fill (default 512)"},
      {"-t", "N,...", "threads of devices that run on host cores (default: one per physical core)"},
      {"-r", "N", "repetitions of each test (default 5)"},
      {"-o", "FORMAT", "what stdout gets: md (default: the table), csv, json or jsonl"},
      {"--json", "F", "write the rows as JSON to F too (- : to stdout, instead of -o)"},
      {"--md", "F", "write the Markdown table to F too (- : to stdout)"},
      {"--svg", "F", "write an SVG bar chart of t/s per device to F (- : to stdout)"},
      {"--cold", "", "measure compile cold (an empty temporary kernel cache) and warm"},
      {"--remeasure-bandwidth", "", "measure the host's memory bandwidth again (else the cached value)"},
      {"--profile", "", "time every kernel of one prefill and one decode step"},
      {"--parallel", "N,...", "also run each tg test with N sequences decoded together, one pass per step, each "
                              "sequence its own tokens (llama-batched-bench's -npl, whose tokens are random per "
                              "sequence too; aggregate tokens/s; depth 0)"},
      {"--spec", "mtp", "also run each tg test as greedy generation by speculative decoding, the model's MTP layer "
                        "drafting (rows tg N mtpD, with the drafts' acceptance; depth 0)"},
      {"--draft", "N,...", "tokens --spec mtp drafts per pass (default 1)"},
      {"--draft-model", "FILE", "the MTP layer's own file where the model keeps it apart: llama.cpp's mtp-*.gguf "
                                "(convert_hf_to_gguf.py --mtp) beside a DeepSeek-V4 GGUF"}},
     0,
     0,
     "As llama-bench: every combination of the lists is a test and a row, per device (and\n"
     "per -t value on devices that run on host cores): for each -b, for each -d, pp of each\n"
     "-p, then tg of each -n. pp N evaluates N prompt tokens in passes of at most -b; tg N\n"
     "decodes N tokens one at a time after a one-token prompt; both after -d cached tokens\n"
     "(filled untimed; 0: an empty cache). Each test runs once to warm up, then -r times;\n"
     "t/s is the mean ± sd over those runs.\n\n"
     "-p and -n values that pass the model's context (after the largest -d) are capped to it,\n"
     "with a note on stderr, as `moat run -n` generates until the context is full.\n\n"
     "Also reported: load (model file to weights on the device), JIT compile time (kernels\n"
     "through the kernel cache as found, $MOAT_CACHE_DIR or ~/.cache/moatless/kernels, so\n"
     "usually warm; --cold: into an empty temporary cache, then warm from it in a second\n"
     "session; compile time never counts in t/s), peak memory (the most bytes of device\n"
     "buffers held at once: weights, cache windows, activations; on the CPU the weights are\n"
     "the model file's mapped pages; peak_rss_bytes in the JSON is the process's peak\n"
     "resident memory) and decode's share of memory bandwidth: weight bytes read per token\n"
     "(non-expert weights with the output matrix, one embedding row, each MoE layer's top-k\n"
     "routed and shared experts) x tokens/s, over the bandwidth measured on the host (CPU,\n"
     "OpenCL CPU devices) or specified by the device (CUDA, HIP; unknown for OpenCL GPUs).\n"
     "The host's bandwidth is measured once per machine and kept in the kernel cache\n"
     "directory (host-bandwidth-*.txt); --remeasure-bandwidth, or deleting that file,\n"
     "measures it again. Cold means moatless' kernel cache is empty; a driver's own cache\n"
     "(PoCL's kcache: POCL_KERNEL_CACHE=0 turns it off) may still be warm.\n\n"
     "Output: stdout gets one form, -o's (md by default, with --profile's per-kernel tables;\n"
     "csv, json and jsonl use llama-bench's field names where they exist, then moatless'\n"
     "own: device, load_ms, compile_ms, h2d_bytes_per_token, ...), or the file option given\n"
     "as -; progress and notes go to stderr. --json, --md and --svg write files as well.\n"
     "--profile's per-kernel times synchronise each launch, so profiled time exceeds plain\n"
     "time. Temporary files are removed on every exit, Ctrl-C and SIGTERM included."},
    run_bench};

}  // namespace

const Command& bench_command() { return kBench; }

}  // namespace moat::cli
