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
#include <optional>
#include <string>

#include "backends/device.h"

namespace moat::runtime {

// Host DRAM read bandwidth in bytes/s: `threads` threads each sum their share of a
// buffer of `bytes` (filled first, so every page is resident), `runs` times; the best
// run counts. Takes a few tenths of a second for 512 MiB.
double measure_host_read_bandwidth(int threads, uint64_t bytes = uint64_t{512} << 20, int runs = 3);

struct Bandwidth {
  double bytes_per_s = 0;  // 0: unknown
  std::string source;      // "measured" | "spec" | "" (unknown)
};

// The bandwidth decode on `device` is compared with; `measured_host` (bytes/s) is the
// host measurement, used for devices that compute from host memory.
Bandwidth device_bandwidth(const backends::DeviceProperties& device, double measured_host);

}  // namespace moat::runtime
