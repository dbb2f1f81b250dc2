#include "samples/moat/bench_report.h"

#include <cstdio>
#include <set>

#include "support/strings.h"

namespace moat::cli {

namespace {

std::string scaled(double value, const char* const* units, int n_units, double step, const char* format) {
  int unit = 0;
  while (value >= step && unit + 1 < n_units) {
    value /= step;
    ++unit;
  }
  char text[48];
  std::snprintf(text, sizeof text, format, value, units[unit]);
  return text;
}

}  // namespace

std::vector<double> samples_ts(const runtime::BenchTest& test) {
  std::vector<double> out;
  for (double ns : test.samples_ns) out.push_back(ns > 0 ? static_cast<double>(test.tokens()) * 1e9 / ns : 0.0);
  return out;
}

std::optional<double> decode_bytes_per_s(const BenchReport& report, const runtime::BenchTest& test) {
  // Several sequences per pass read the weights once for all of them (and more experts
  // than one token does), and speculative decoding reads them per pass and the draft's
  // too: bytes per token are not a single token's.
  if (test.n_gen == 0 || test.sequences > 1 || test.draft > 0) return std::nullopt;
  return static_cast<double>(report.model.decode_bytes_per_token) * runtime::mean_sd(samples_ts(test)).mean;
}

std::optional<double> bandwidth_share(const BenchReport& report, const DeviceBench& device, const runtime::BenchTest& test) {
  std::optional<double> reached = decode_bytes_per_s(report, test);
  if (!reached || device.bandwidth.bytes_per_s <= 0) return std::nullopt;
  return *reached / device.bandwidth.bytes_per_s;
}

bool batch_varies(const BenchReport& report) {
  std::set<int64_t> batches;
  for (const DeviceBench& d : report.devices)
    for (const runtime::BenchTest& test : d.result.tests) batches.insert(test.n_batch);
  return batches.size() > 1 || (batches.size() == 1 && *batches.begin() != runtime::BenchTest{}.n_batch);
}

std::string device_label(const BenchReport& report, const DeviceBench& device) {
  size_t runs = 0;
  for (const DeviceBench& d : report.devices) runs += d.info.id == device.info.id;
  return runs > 1 && device.n_threads > 0 ? cat(device.info.id, " t", device.n_threads) : device.info.id;
}

std::string test_label(const BenchReport& report, const runtime::BenchTest& test) {
  return batch_varies(report) ? cat(test.name(), " b", test.n_batch) : test.name();
}

std::string human_count(double count) {
  static const char* const units[] = {"", "K", "M", "B", "T"};
  return scaled(count, units, 5, 1000, "%.2f %s");
}

std::string human_bytes(double bytes) {
  static const char* const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  return scaled(bytes, units, 5, 1024, "%.2f %s");
}

}  // namespace moat::cli
