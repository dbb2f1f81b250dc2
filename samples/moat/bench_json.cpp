// moat bench --json: one object per device and test, with llama-bench's field names
// where they apply (model_filename ... test_time, build_commit) and moatless' own after
// them. Durations: *_ns nanoseconds (integers), *_ms milliseconds; rates: *_ts tokens/s,
// *_gbs 1e9 bytes/s; memory: bytes. null where a value does not apply or is unknown.
#include <cmath>
#include <nlohmann/json.hpp>

#include "samples/moat/bench_report.h"

namespace moat::cli {

namespace {

nlohmann::ordered_json optional_number(std::optional<double> value) { return value ? nlohmann::ordered_json(*value) : nlohmann::ordered_json(); }

nlohmann::ordered_json profile_json(const runtime::KernelProfile& profile) {
  nlohmann::ordered_json out = nlohmann::ordered_json::array();
  const double total = profile.total_ms();
  for (const runtime::KernelTime& k : profile.by_time())
    out.push_back({{"kernel", k.name},
                   {"launches", k.launches},
                   {"total_ms", k.total_ms},
                   {"share", total > 0 ? k.total_ms / total : 0.0}});
  return out;
}

nlohmann::ordered_json row(const BenchReport& report, const DeviceBench& d, const runtime::BenchTest& test) {
  const std::vector<double> ts = samples_ts(test);
  const runtime::MeanSd ns = runtime::mean_sd(test.samples_ns), rate = runtime::mean_sd(ts);
  std::vector<uint64_t> samples_ns;
  for (double v : test.samples_ns) samples_ns.push_back(static_cast<uint64_t>(std::llround(std::max(v, 0.0))));
  const bool known_bandwidth = d.bandwidth.bytes_per_s > 0;
  nlohmann::ordered_json j = {
      {"model_filename", report.model_filename},
      {"model_type", report.model.label},
      {"model_size", report.model.bytes},
      {"model_n_params", report.model.params},
      {"n_prompt", test.n_prompt},
      {"n_gen", test.n_gen},
      {"n_depth", test.depth},
      {"n_threads", d.n_threads > 0 ? nlohmann::ordered_json(d.n_threads) : nlohmann::ordered_json()},
      {"avg_ns", static_cast<uint64_t>(std::llround(std::max(ns.mean, 0.0)))},
      {"stddev_ns", static_cast<uint64_t>(std::llround(ns.sd))},
      {"avg_ts", rate.mean},
      {"stddev_ts", rate.sd},
      {"samples_ns", samples_ns},
      {"samples_ts", ts},
      {"test_time", d.test_time},
      {"build_commit", report.build_commit.empty() ? nlohmann::ordered_json() : nlohmann::ordered_json(report.build_commit)},
      {"test", test.name()},
      {"device", d.info.id},
      {"device_name", d.info.name},
      {"backend", d.info.backend},
      {"load_ms", d.result.load_ms},
      {"compile_ms", d.result.compile_ms},
      {"compile_warm_ms", d.result.compile_warm_ms},
      {"peak_bytes", d.result.peak_bytes},
      {"peak_rss_bytes", d.result.peak_rss_bytes > 0 ? nlohmann::ordered_json(d.result.peak_rss_bytes) : nlohmann::ordered_json()},
      {"h2d_bytes_per_token", test.h2d_bytes_per_token},
      {"d2h_bytes_per_token", test.d2h_bytes_per_token},
      {"launches_per_token", test.launches_per_token},
      {"allocs_per_token", test.allocs_per_token},
      {"decode_bytes_per_token", report.model.decode_bytes_per_token},
      {"decode_gbs", optional_number(test.n_gen > 0 ? std::optional<double>(decode_bytes_per_s(report, test).value_or(0) / 1e9)
                                                    : std::nullopt)},
      {"bandwidth_gbs", known_bandwidth ? nlohmann::ordered_json(d.bandwidth.bytes_per_s / 1e9) : nlohmann::ordered_json()},
      {"bandwidth_source", known_bandwidth ? nlohmann::ordered_json(d.bandwidth.source) : nlohmann::ordered_json()},
      {"bandwidth_share", optional_number(bandwidth_share(report, d, test))},
  };
  if (test.profile) j["profile"] = profile_json(*test.profile);
  return j;
}

}  // namespace

std::string bench_json(const BenchReport& report) {
  nlohmann::ordered_json rows = nlohmann::ordered_json::array();
  for (const DeviceBench& d : report.devices)
    for (const runtime::BenchTest& test : d.result.tests) rows.push_back(row(report, d, test));
  return rows.dump(2, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

}  // namespace moat::cli
