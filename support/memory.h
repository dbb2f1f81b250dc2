// What the host's memory allows: used to size caches before allocating them.
#pragma once

#include <cstdint>

namespace moat {

// Bytes the host can give to new allocations now without swapping (Linux:
// MemAvailable in /proc/meminfo); 0 when the system does not say.
uint64_t available_host_memory();

// The most resident memory this process has held (Linux: VmHWM in /proc/self/status),
// bytes, since it started or since reset_peak_resident_memory(); 0 when unknown.
uint64_t peak_resident_memory();
// Restarts the peak at the current resident size (Linux >= 4.0: "5" to
// /proc/self/clear_refs). False when the system does not allow it.
bool reset_peak_resident_memory();

// Tells the system that this process will not read [data, data + bytes) for a while:
// the whole pages inside it may leave resident memory (Linux: MADV_PAGEOUT; file-backed
// pages, such as a mapped model file, are dropped and read back if touched again;
// anonymous pages go to swap, or stay). The contents never change. No-op where the
// system cannot.
void release_host_pages(const void* data, uint64_t bytes);

}  // namespace moat
