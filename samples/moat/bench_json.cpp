// moat bench's rows as JSON (-o json, --json), JSON lines (-o jsonl) and CSV (-o csv):
// one object per device, thread count and test, with llama-bench's field names and
// order where they apply (build_commit ... stddev_ts, samples_ns, samples_ts) and
// moatless' own after them. Durations: *_ns nanoseconds (integers), *_ms milliseconds;
// rates: *_ts tokens/s, *_gbs 1e9 bytes/s; memory: bytes. null where a value does not
// apply or is unknown (empty in the CSV).
#include <cmath>
#include <nlohmann/json.hpp>

#include "samples/moat/bench_report.h"

namespace moat::cli {

namespace {

using Json = nlohmann::ordered_json;

Json optional_number(std::optional<double> value) { return value ? Json(*value) : Json(); }

Json profile_json(const runtime::KernelProfile& profile) {
  Json out = Json::array();
  const double total = profile.total_ms();
  for (const runtime::KernelTime& k : profile.by_time())
    out.push_back({{"kernel", k.name},
                   {"launches", k.launches},
                   {"total_ms", k.total_ms},
                   {"share", total > 0 ? k.total_ms / total : 0.0}});
  return out;
}

Json row(const BenchReport& report, const DeviceBench& d, const runtime::BenchTest& test) {
  const std::vector<double> ts = samples_ts(test);
  const runtime::MeanSd ns = runtime::mean_sd(test.samples_ns), rate = runtime::mean_sd(ts);
  std::vector<uint64_t> samples_ns;
  for (double v : test.samples_ns) samples_ns.push_back(static_cast<uint64_t>(std::llround(std::max(v, 0.0))));
  const bool known_bandwidth = d.bandwidth.bytes_per_s > 0;
  const runtime::BenchResult& r = d.result;
  Json j = {
      // llama-bench's fields, in its order
      {"build_commit", report.build_commit.empty() ? Json() : Json(report.build_commit)},
      {"cpu_info", report.cpu_info},
      {"backends", d.info.backend},
      {"model_filename", report.model_filename},
      {"model_type", report.model.label},
      {"model_size", report.model.bytes},
      {"model_n_params", report.model.params},
      {"n_batch", test.n_batch},
      {"n_ubatch", test.n_batch},  // moatless evaluates a batch in one pass: both are -b
      {"n_threads", d.n_threads > 0 ? Json(d.n_threads) : Json()},
      {"n_prompt", test.n_prompt},
      {"n_gen", test.n_gen},
      {"n_seq", test.sequences},  // llama-batched-bench's parallel sequences (1: plain)
      {"n_draft", test.draft},    // tokens drafted per pass by the MTP layer (0: plain decoding)
      {"draft_acceptance", test.draft > 0 ? Json(test.acceptance) : Json()},
      {"draft_accepted_per_pass", test.draft > 0 ? Json(test.accepted_per_pass) : Json()},
      {"n_depth", test.depth},
      {"test_time", d.test_time},
      {"avg_ns", static_cast<uint64_t>(std::llround(std::max(ns.mean, 0.0)))},
      {"stddev_ns", static_cast<uint64_t>(std::llround(ns.sd))},
      {"avg_ts", rate.mean},
      {"stddev_ts", rate.sd},
      {"samples_ns", samples_ns},
      {"samples_ts", ts},
      // moatless' own
      {"test", test.name()},
      {"device", d.info.id},
      {"device_name", d.info.name},
      {"backend", d.info.backend},
      {"load_ms", r.load_ms},
      {"compile_ms", r.compile_ms},
      {"compile_cold", report.cold},
      {"compile_warm_ms", optional_number(r.compile_warm_ms)},
      {"kernels_compiled", r.kernels_compiled},
      {"kernels_cached", r.kernels_cached},
      {"peak_bytes", r.peak_bytes},
      {"peak_rss_bytes", r.peak_rss_bytes > 0 ? Json(r.peak_rss_bytes) : Json()},
      {"h2d_bytes_per_token", test.h2d_bytes_per_token},
      {"d2h_bytes_per_token", test.d2h_bytes_per_token},
      {"launches_per_token", test.launches_per_token},
      {"allocs_per_token", test.allocs_per_token},
      {"placement", d.placement.empty() ? Json() : Json(d.placement)},
      {"moved_bytes_per_token", test.moved_bytes_per_token},
      {"decode_bytes_per_token", report.model.decode_bytes_per_token},
      {"decode_gbs", optional_number(decode_bytes_per_s(report, test) ? std::optional<double>(*decode_bytes_per_s(report, test) / 1e9)
                                                                       : std::nullopt)},
      {"bandwidth_gbs", known_bandwidth ? Json(d.bandwidth.bytes_per_s / 1e9) : Json()},
      {"bandwidth_source", known_bandwidth ? Json(d.bandwidth.source) : Json()},
      {"bandwidth_share", optional_number(bandwidth_share(report, d, test))},
  };
  if (test.profile) j["profile"] = profile_json(*test.profile);
  return j;
}

std::vector<Json> rows(const BenchReport& report) {
  std::vector<Json> out;
  for (const DeviceBench& d : report.devices)
    for (const runtime::BenchTest& test : d.result.tests) out.push_back(row(report, d, test));
  return out;
}

std::string dumped(const Json& j, int indent = -1) { return j.dump(indent, ' ', false, Json::error_handler_t::replace); }

// A CSV field, always quoted (as llama-bench), quotes doubled.
std::string csv_field(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

}  // namespace

std::string bench_json(const BenchReport& report) {
  Json all = Json::array();
  for (Json& j : rows(report)) all.push_back(std::move(j));
  return dumped(all, 2) + "\n";
}

std::string bench_jsonl(const BenchReport& report) {
  std::string out;
  for (const Json& j : rows(report)) out += dumped(j) + "\n";
  return out;
}

std::string bench_csv(const BenchReport& report) {
  const std::vector<Json> all = rows(report);
  // The columns: every field that is not a list, in the order of the first row (every
  // row has them all; only "profile", a list, is optional).
  std::vector<std::string> columns;
  const Json example = row(report, {}, {});
  for (const auto& [key, value] : example.items())
    if (!value.is_array() && !value.is_object()) columns.push_back(key);
  std::string out;
  for (size_t i = 0; i < columns.size(); ++i) out += (i ? "," : "") + columns[i];
  out += "\n";
  for (const Json& j : all) {
    for (size_t i = 0; i < columns.size(); ++i) {
      const Json& v = j[columns[i]];
      out += i ? "," : "";
      out += csv_field(v.is_null() ? "" : v.is_string() ? v.get<std::string>() : dumped(v));
    }
    out += "\n";
  }
  return out;
}

}  // namespace moat::cli
