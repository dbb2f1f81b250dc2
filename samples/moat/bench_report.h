// The results of `moat bench`, and the three forms they are written in: a Markdown
// table (stdout, --md), JSON rows with llama-bench's field names (--json) and an SVG bar
// chart (--svg). One row per device and test, pp and tg separately, as llama-bench.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "backends/registry.h"
#include "runtime/bandwidth.h"
#include "runtime/bench.h"
#include "frontend/model.h"

namespace moat::cli {

struct DeviceBench {
  backends::DeviceInfo info;
  int n_threads = 0;              // CPU worker threads; 0 for devices that schedule their own
  runtime::Bandwidth bandwidth;   // what decode is compared with
  std::string test_time;          // when the device's tests began, ISO 8601 UTC
  runtime::BenchResult result;
};

struct BenchReport {
  std::string model_filename;  // as given to -m
  models::ModelSize model;
  std::string build_commit;    // "" when unknown
  std::vector<DeviceBench> devices;
};

// Tokens per second of each sample of `test`.
std::vector<double> samples_ts(const runtime::BenchTest& test);
// The weight bytes per second that decode reached (tg tests; nullopt for pp).
std::optional<double> decode_bytes_per_s(const BenchReport& report, const runtime::BenchTest& test);
// decode_bytes_per_s / the device's bandwidth; nullopt for pp or an unknown bandwidth.
std::optional<double> bandwidth_share(const BenchReport& report, const DeviceBench& device, const runtime::BenchTest& test);

// "176.10 K", "15.71 B"; "170.31 KiB", "15.56 GiB".
std::string human_count(double count);
std::string human_bytes(double bytes);

std::string bench_markdown(const BenchReport& report);
// The per-kernel tables of --profile, in Markdown; "" when nothing was profiled.
std::string bench_profile_markdown(const BenchReport& report);
std::string bench_json(const BenchReport& report);  // a JSON array, one object per row
std::string bench_svg(const BenchReport& report);

}  // namespace moat::cli
