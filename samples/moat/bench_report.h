// The results of `moat bench`, and the forms they are written in: a Markdown table
// (-o md, --md), rows with llama-bench's field names as JSON (-o json, --json), JSON
// lines (-o jsonl) or CSV (-o csv), and an SVG bar chart (--svg). One row per device,
// thread count and test (each combination of -b, -d, -p / -n), pp and tg separately, as
// llama-bench.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "backends/registry.h"
#include "runtime/bandwidth.h"
#include "runtime/bench.h"
#include "frontend/model.h"

namespace moat::cli {

// One device opened with one thread count (a device that runs on host threads is
// opened once per -t value).
struct DeviceBench {
  backends::DeviceInfo info;
  int n_threads = 0;              // worker threads on host cores; 0 for devices that schedule their own
  runtime::Bandwidth bandwidth;   // what decode is compared with
  std::string test_time;          // when the device's tests began, ISO 8601 UTC
  // Several devices ("cpu+opencl:0", `info` their ids and names joined): what each runs.
  std::string placement;
  runtime::BenchResult result;
};

struct BenchReport {
  std::string model_filename;  // as given to -m
  models::ModelSize model;
  std::string build_commit;    // "" when unknown
  std::string cpu_info;        // the host CPU's name (llama-bench's cpu_info)
  bool cold = false;           // --cold: compile measured into an empty cache, then warm
  std::vector<DeviceBench> devices;
};

// A row's device ("cpu"; "cpu t4" when the report has that device at several thread
// counts) and test ("pp512 @ d4096"; " b256" added when the rows differ in batch).
std::string device_label(const BenchReport& report, const DeviceBench& device);
std::string test_label(const BenchReport& report, const runtime::BenchTest& test);
// Whether the rows differ in batch, or share one other than the default (512).
bool batch_varies(const BenchReport& report);

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
std::string bench_json(const BenchReport& report);   // a JSON array, one object per row
std::string bench_jsonl(const BenchReport& report);  // one JSON object per line and row
std::string bench_csv(const BenchReport& report);    // a header line, then one line per row; the fields that are lists left out
std::string bench_svg(const BenchReport& report);

}  // namespace moat::cli
