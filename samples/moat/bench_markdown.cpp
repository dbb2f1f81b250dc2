// moat bench's Markdown: llama-bench's table (model, size, params, backend, device,
// threads, n_batch when it is not the default, test, t/s) with the columns only
// moatless has: load and JIT compile time (through the kernel cache as found; --cold:
// cold / warm), the device's peak memory and decode's share of memory bandwidth.
#include <algorithm>
#include <cstdio>

#include "samples/moat/bench_report.h"
#include "support/strings.h"

namespace moat::cli {

namespace {

std::string fixed(double value, int digits) {
  char text[48];
  std::snprintf(text, sizeof text, "%.*f", digits, value);
  return text;
}

std::string bandwidth_cell(const BenchReport& report, const DeviceBench& device, const runtime::BenchTest& test) {
  // speculative decoding: its drafts' fate instead (weights are read per pass, not per token)
  if (test.draft > 0)
    return cat("drafts accepted ", fixed(test.acceptance * 100, 1), "%, ", fixed(test.accepted_per_pass, 2), " tokens per pass");
  if (!decode_bytes_per_s(report, test)) return "";  // prefill, or several sequences per pass
  const double reached = decode_bytes_per_s(report, test).value_or(0) / 1e9;
  std::optional<double> share = bandwidth_share(report, device, test);
  if (!share) return cat(fixed(reached, 2), " GB/s of unknown");
  return cat(fixed(*share * 100, 1), "% (", fixed(reached, 2), " of ", fixed(device.bandwidth.bytes_per_s / 1e9, 1),
             " GB/s ", device.bandwidth.source, ")");
}

}  // namespace

std::string bench_markdown(const BenchReport& report) {
  const bool batch = batch_varies(report);
  const bool placed = std::any_of(report.devices.begin(), report.devices.end(), [](const DeviceBench& d) { return !d.placement.empty(); });
  const std::string compile = report.cold ? "compile ms cold / warm" : "compile ms";
  std::string out = cat("| model | size | params | backend | device | threads | ", batch ? "n_batch | " : "",
                        "test | t/s | load ms | ", compile, " | peak mem | decode bandwidth |", placed ? " moved / token |" : "", "\n",
                        "| ----- | ---: | -----: | ------- | ------ | ------: | ", batch ? "------: | " : "",
                        "---: | --: | ------: | ", std::string(compile.size() - 1, '-'), ": | -------: | ---------------: |",
                        placed ? " ------------: |" : "", "\n");
  for (const DeviceBench& d : report.devices)
    for (const runtime::BenchTest& test : d.result.tests) {
      const runtime::MeanSd ts = runtime::mean_sd(samples_ts(test));
      const runtime::BenchResult& r = d.result;
      out += cat("| ", report.model.label, " | ", human_bytes(static_cast<double>(report.model.bytes)), " | ",
                 human_count(static_cast<double>(report.model.params)), " | ", d.info.backend, " | ", d.info.id, " | ",
                 d.n_threads > 0 ? std::to_string(d.n_threads) : "-", " | ", batch ? cat(test.n_batch, " | ") : "",
                 test.name(), " | ", fixed(ts.mean, 2), " ± ", fixed(ts.sd, 2), " | ", fixed(r.load_ms, 1), " | ",
                 fixed(r.compile_ms, 0), r.compile_warm_ms ? cat(" / ", fixed(*r.compile_warm_ms, 0)) : "", " | ",
                 human_bytes(static_cast<double>(r.peak_bytes)), " | ", bandwidth_cell(report, d, test), " |",
                 placed ? cat(" ", d.placement.empty() ? "-" : human_bytes(test.moved_bytes_per_token), " |") : "", "\n");
    }
  for (const DeviceBench& d : report.devices)
    if (!d.placement.empty()) out += cat("\n", d.info.id, ": ", d.placement);
  if (placed) out += "\n";
  if (!report.build_commit.empty()) out += cat("\nbuild: ", report.build_commit, "\n");
  return out;
}

std::string bench_profile_markdown(const BenchReport& report) {
  constexpr size_t kMaxRows = 20;  // the rest are summed in one line
  std::string out;
  for (const DeviceBench& d : report.devices)
    for (const runtime::BenchTest& test : d.result.tests) {
      if (!test.profile) continue;
      const runtime::KernelProfile& p = *test.profile;
      const double total = p.total_ms();
      out += cat("\n### ", device_label(report, d), ": ",
                 test.n_prompt > 0        ? cat("one prefill of ", test.n_prompt, " tokens")
                 : test.sequences > 1 ? cat("one decode step of ", test.sequences, " sequences")
                                      : "one decode step",
                 test.depth > 0 ? cat(" after ", test.depth, " cached tokens") : "", batch_varies(report) && test.n_prompt > 0 ? cat(", batch ", test.n_batch) : "",
                 " — ", p.launches(), " launches, ", fixed(total, 3), " ms\n\n");
      out += "| kernel | launches | total ms | share |\n| ------ | -------: | -------: | ----: |\n";
      const std::vector<runtime::KernelTime> kernels = p.by_time();
      double rest_ms = 0;
      int64_t rest_launches = 0;
      for (size_t i = 0; i < kernels.size(); ++i) {
        const runtime::KernelTime& k = kernels[i];
        if (i >= kMaxRows) {
          rest_ms += k.total_ms;
          rest_launches += k.launches;
          continue;
        }
        out += cat("| ", k.name, " | ", k.launches, " | ", fixed(k.total_ms, 3), " | ",
                   fixed(total > 0 ? 100 * k.total_ms / total : 0, 1), "% |\n");
      }
      if (kernels.size() > kMaxRows)
        out += cat("| (", kernels.size() - kMaxRows, " more kernels) | ", rest_launches, " | ", fixed(rest_ms, 3), " | ",
                   fixed(total > 0 ? 100 * rest_ms / total : 0, 1), "% |\n");
    }
  return out;
}

}  // namespace moat::cli
