// Memory bandwidth: how fast a device can read its memory, the yardstick for decode
// (which reads every active weight once per token).
//
// Where it comes from, per device (DeviceProperties):
//   host_memory (the CPU backend, OpenCL CPU devices such as PoCL): measured here, a
//       streaming read of a buffer far larger than the last-level cache by every
//       hardware thread;
//   memory_bandwidth > 0 (CUDA, HIP): the specification, memory clock x bus width x 2;
//   else (OpenCL GPUs: no standard query): unknown.
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>

#include "backends/device.h"

namespace moat::runtime {

// Host DRAM read bandwidth in bytes/s: `threads` threads each sum their share of a
// buffer of `bytes` (filled first, so every page is resident), `runs` times; the best
// run counts. Takes a few tenths of a second for 512 MiB.
double measure_host_read_bandwidth(int threads, uint64_t bytes = uint64_t{512} << 20, int runs = 3);

// This machine as the bandwidth cache knows it: host name, CPU model, hardware threads
// and physical memory ("host=...; cpu=...; threads=16; memory=68719476736").
std::string machine_description();

// The host's read bandwidth, measured once per machine and kept in a small text file in
// `dir` (host-bandwidth-<16 hex digits of the SHA-256 of machine_description()>.txt,
// written atomically). `measure` runs (and the file is rewritten) when the file is
// absent, unreadable, for another machine, or when `remeasure`; `dir` empty: it runs
// every time and nothing is written. A file that cannot be written is not an error.
struct HostBandwidth {
  double bytes_per_s = 0;
  bool cached = false;          // read from `file`, not measured now
  std::filesystem::path file;   // where it is kept; empty when `dir` was
  std::string measured_at;      // ISO 8601 UTC, when the measurement was taken
};
HostBandwidth cached_host_read_bandwidth(const std::filesystem::path& dir, bool remeasure,
                                         const std::function<double()>& measure);

struct Bandwidth {
  double bytes_per_s = 0;  // 0: unknown
  std::string source;      // "measured" | "spec" | "" (unknown)
};

// The bandwidth decode on `device` is compared with; `measured_host` (bytes/s) is the
// host measurement, used for devices that compute from host memory.
Bandwidth device_bandwidth(const backends::DeviceProperties& device, double measured_host);

}  // namespace moat::runtime
