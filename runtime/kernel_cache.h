// Compiled kernels by content: a warm start compiles nothing.
//
// Key: SHA-256 over (cache format version, MOAT_VERSION, the device's
// compile_fingerprint(), the source's format — its target's row in jit/target.h —,
// kernel names and bytes), each length-prefixed. Entries live in memory for the life of the cache and, when a
// directory is given, as one file per key (<dir>/<hex key>.kc) whose header carries a
// magic, the format version, the key, the payload size and the payload's SHA-256. A
// file that is truncated, corrupt or for another key is never trusted: the source is
// recompiled and the file rewritten. Files are written to a temporary name in the same
// directory and renamed, so readers never see a partial entry.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>

#include "backends/device.h"

namespace moat::runtime {

struct KernelCacheStats {
  uint64_t memory_hits = 0;
  uint64_t disk_hits = 0;
  uint64_t compiles = 0;          // misses: the device compiled the source
  uint64_t rejected_entries = 0;  // disk entries that were corrupt, truncated or mismatching
  uint64_t write_failures = 0;    // entries that could not be stored on disk

  uint64_t hits() const { return memory_hits + disk_hits; }
};

class KernelCache {
 public:
  // `dir` empty: memory only. A directory that cannot be created is reported on
  // stderr and the cache works in memory only; the first failed write is reported
  // likewise, after which entries are still read from `dir` but no longer written.
  explicit KernelCache(std::filesystem::path dir);
  ~KernelCache();
  KernelCache(const KernelCache&) = delete;
  KernelCache& operator=(const KernelCache&) = delete;

  // The compiled form of `source` for `device`: from memory, else from disk, else
  // device.compile(source) (stored in both). Compile errors propagate. Thread-safe;
  // two threads missing the same key at once may both compile it.
  backends::Artifact get_or_compile(backends::Device& device, const backends::Artifact& source);

  KernelCacheStats stats() const;
  // One line: "kernel cache: 3 hits (1 memory, 2 disk), 1 compile, ... in DIR".
  std::string report() const;
  // The directory entries are read from; empty when in memory only.
  std::filesystem::path dir() const;

 private:
  struct State;
  std::unique_ptr<State> state_;
};

// The key of `source` on a device with `fingerprint`, as 64 hex digits.
std::string kernel_cache_key(const backends::Artifact& source, std::string_view fingerprint);

// Where kernels are cached, from the values of $MOAT_CACHE_DIR, $XDG_CACHE_HOME and
// $HOME (nullptr or "" when unset; the caller reads the environment): MOAT_CACHE_DIR
// as is, else XDG_CACHE_HOME/moatless/kernels (if absolute), else
// HOME/.cache/moatless/kernels; empty (memory only) when none is set.
std::filesystem::path default_kernel_cache_dir(const char* moat_cache_dir_env, const char* xdg_cache_home_env,
                                               const char* home_env);

}  // namespace moat::runtime
