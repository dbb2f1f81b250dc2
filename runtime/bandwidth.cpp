#include "runtime/bandwidth.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>
#include <system_error>
#include <thread>
#include <vector>

#include "support/sha256.h"

namespace moat::runtime {

namespace {

// Sum of [begin, end): four independent accumulators, so the loop is bound by loads,
// not by the latency of one chain of adds.
uint64_t sum_words(const uint64_t* begin, const uint64_t* end) {
  uint64_t a = 0, b = 0, c = 0, d = 0;
  const uint64_t* p = begin;
  for (; p + 4 <= end; p += 4) {
    a += p[0];
    b += p[1];
    c += p[2];
    d += p[3];
  }
  for (; p < end; ++p) a += *p;
  return a + b + c + d;
}

constexpr const char* kBandwidthHeader = "moatless host read bandwidth v1";

std::string cpu_model() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    const size_t colon = line.find(':');
    if (colon == std::string::npos) continue;
    std::string key = line.substr(0, colon);
    while (!key.empty() && (key.back() == ' ' || key.back() == '\t')) key.pop_back();
    if (key != "model name" && key != "Model" && key != "cpu model") continue;
    std::string value = line.substr(colon + 1);
    value.erase(0, value.find_first_not_of(" \t"));
    return value;
  }
  return "unknown";
}

std::string utc_now() {
  const std::time_t now = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&now, &tm);
  char text[32];
  std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return text;
}

// The value of `key` ("key value" lines) in `text`; "" when absent.
std::string field(const std::string& text, const std::string& key) {
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);)
    if (line.size() > key.size() && line.compare(0, key.size(), key) == 0 && line[key.size()] == ' ')
      return line.substr(key.size() + 1);
  return "";
}

}  // namespace

std::string machine_description() {
  char host[256] = {};
  if (::gethostname(host, sizeof host - 1) != 0) host[0] = '\0';
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  const uint64_t memory = pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
  std::string out = "host=" + std::string(host) + "; cpu=" + cpu_model() +
                    "; threads=" + std::to_string(std::thread::hardware_concurrency()) + "; memory=" + std::to_string(memory);
  for (char& c : out)
    if (c == '\n' || c == '\r') c = ' ';
  return out;
}

HostBandwidth cached_host_read_bandwidth(const std::filesystem::path& dir, bool remeasure,
                                         const std::function<double()>& measure) {
  HostBandwidth out;
  const std::string machine = machine_description();
  if (!dir.empty()) out.file = dir / ("host-bandwidth-" + to_hex(Sha256().update(machine).finish()).substr(0, 16) + ".txt");
  if (!out.file.empty() && !remeasure) {
    std::ifstream in(out.file, std::ios::binary);
    std::ostringstream text;
    text << in.rdbuf();
    const std::string s = text.str();
    double value = 0;
    const std::string bytes = field(s, "bytes_per_s");
    if (in && s.compare(0, std::char_traits<char>::length(kBandwidthHeader), kBandwidthHeader) == 0 &&
        field(s, "machine") == machine && std::sscanf(bytes.c_str(), "%lf", &value) == 1 && value > 0) {
      out.bytes_per_s = value;
      out.cached = true;
      out.measured_at = field(s, "measured_at");
      return out;
    }
  }
  out.bytes_per_s = measure();
  out.measured_at = utc_now();
  if (out.file.empty() || out.bytes_per_s <= 0) return out;
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  const std::filesystem::path temp = out.file.string() + "." + std::to_string(::getpid()) + ".tmp";
  {
    std::ofstream file(temp, std::ios::binary | std::ios::trunc);
    char value[64];
    std::snprintf(value, sizeof value, "%.6e", out.bytes_per_s);
    file << kBandwidthHeader << "\nmachine " << machine << "\nbytes_per_s " << value << "\nmeasured_at " << out.measured_at
         << "\n";
    file.close();
    if (!file) error = std::make_error_code(std::errc::io_error);
  }
  if (!error) std::filesystem::rename(temp, out.file, error);
  if (error) {
    std::filesystem::remove(temp, error);
    out.file.clear();  // not kept
  }
  return out;
}

double measure_host_read_bandwidth(int threads, uint64_t bytes, int runs) {
  threads = std::max(threads, 1);
  const size_t words = static_cast<size_t>(std::max<uint64_t>(bytes / sizeof(uint64_t), static_cast<uint64_t>(threads)));
  std::unique_ptr<uint64_t[]> buffer(new uint64_t[words]);
  for (size_t i = 0; i < words; ++i) buffer[i] = i;  // makes every page resident

  std::vector<uint64_t> sums(static_cast<size_t>(threads));  // results kept, so the reads are not elided
  double best = 0;
  for (int run = 0; run < std::max(runs, 1); ++run) {
    const auto start = std::chrono::steady_clock::now();
    std::vector<std::thread> workers;
    for (int t = 0; t < threads; ++t) {
      const size_t begin = words * static_cast<size_t>(t) / static_cast<size_t>(threads);
      const size_t end = words * static_cast<size_t>(t + 1) / static_cast<size_t>(threads);
      workers.emplace_back([&, t, begin, end] { sums[static_cast<size_t>(t)] = sum_words(&buffer[begin], &buffer[end]); });
    }
    for (std::thread& w : workers) w.join();
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (seconds > 0) best = std::max(best, static_cast<double>(words * sizeof(uint64_t)) / seconds);
  }
  volatile uint64_t sink = 0;
  for (uint64_t s : sums) sink = sink + s;
  return best;
}

Bandwidth device_bandwidth(const backends::DeviceProperties& device, double measured_host) {
  if (device.host_memory) return measured_host > 0 ? Bandwidth{measured_host, "measured"} : Bandwidth{};
  if (device.memory_bandwidth > 0) return {device.memory_bandwidth, "spec"};
  return {};
}

}  // namespace moat::runtime
