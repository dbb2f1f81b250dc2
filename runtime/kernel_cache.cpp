#include "runtime/kernel_cache.h"

#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <mutex>
#include <system_error>

#include "support/error.h"
#include "support/sha256.h"

namespace moat::runtime {

namespace {

using backends::Artifact;

// Bump whenever the key's inputs or the entry layout change.
constexpr uint32_t kFormatVersion = 1;
constexpr char kMagic[8] = {'M', 'O', 'A', 'T', 'K', 'C', '\n', '\x1a'};
// Entry header: magic[8], version u32, reserved u32, key[32], payload size u64, payload SHA-256[32].
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 32 + 8 + 32;
constexpr uint64_t kMaxPayloadBytes = uint64_t{1} << 30;  // larger entries are treated as corrupt

void put_u32(std::vector<uint8_t>& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_u64(std::vector<uint8_t>& out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}
void put_string(std::vector<uint8_t>& out, std::string_view s) {
  put_u32(out, static_cast<uint32_t>(s.size()));
  out.insert(out.end(), s.begin(), s.end());
}

// A bounds-checked little-endian reader; any overrun makes ok false.
struct Reader {
  const uint8_t* at;
  const uint8_t* end;
  bool ok = true;

  bool take(void* dst, size_t n) {
    if (!ok || static_cast<size_t>(end - at) < n) return ok = false;
    std::memcpy(dst, at, n);
    at += n;
    return true;
  }
  uint64_t u(int bytes) {
    uint8_t b[8] = {};
    take(b, static_cast<size_t>(bytes));
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = v << 8 | b[i];
    return v;
  }
  std::string string() {
    uint64_t n = u(4);
    if (!ok || static_cast<uint64_t>(end - at) < n) {
      ok = false;
      return {};
    }
    std::string s(reinterpret_cast<const char*>(at), n);
    at += n;
    return s;
  }
};

std::vector<uint8_t> encode_payload(const Artifact& a) {
  std::vector<uint8_t> out;
  put_string(out, a.format);
  put_u32(out, static_cast<uint32_t>(a.kernels.size()));
  for (const std::string& k : a.kernels) put_string(out, k);
  put_u64(out, a.bytes.size());
  out.insert(out.end(), a.bytes.begin(), a.bytes.end());
  return out;
}

bool decode_payload(const uint8_t* data, size_t size, Artifact& a) {
  Reader r{data, data + size};
  a.format = r.string();
  uint64_t n_kernels = r.u(4);
  for (uint64_t i = 0; r.ok && i < n_kernels; ++i) a.kernels.push_back(r.string());
  uint64_t n_bytes = r.u(8);
  if (!r.ok || n_bytes != static_cast<uint64_t>(r.end - r.at)) return false;
  a.bytes.assign(r.at, r.end);
  return true;
}

Sha256::Digest key_digest(const Artifact& source, std::string_view fingerprint) {
  std::vector<uint8_t> prefix;
  put_string(prefix, "moatless kernel cache");
  put_u32(prefix, kFormatVersion);
  put_string(prefix, MOAT_VERSION);
  put_string(prefix, fingerprint);
  put_string(prefix, source.format);
  put_u32(prefix, static_cast<uint32_t>(source.kernels.size()));
  for (const std::string& k : source.kernels) put_string(prefix, k);
  put_u64(prefix, source.bytes.size());
  Sha256 hash;
  hash.update(prefix);
  hash.update(source.bytes);
  return hash.finish();
}

}  // namespace

struct KernelCache::State {
  std::filesystem::path dir;  // empty: memory only
  std::atomic<bool> writable{false};
  std::atomic<uint64_t> temp_counter{0};
  mutable std::mutex mutex;
  std::map<Sha256::Digest, Artifact> memory;  // guarded by mutex
  KernelCacheStats stats;                     // guarded by mutex

  std::filesystem::path entry_path(const Sha256::Digest& key) const { return dir / (to_hex(key) + ".kc"); }

  void count(uint64_t KernelCacheStats::*field) {
    std::lock_guard<std::mutex> lock(mutex);
    stats.*field += 1;
  }

  // The entry for `key`, or false when absent, unreadable or not trustworthy.
  bool read_entry(const Sha256::Digest& key, Artifact& out) {
    std::ifstream in(entry_path(key), std::ios::binary);
    if (!in) return false;
    std::vector<uint8_t> file((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    Reader r{file.data(), file.data() + file.size()};
    char magic[8] = {};
    Sha256::Digest stored_key{}, checksum{};
    r.take(magic, sizeof magic);
    uint64_t version = r.u(4);
    r.u(4);
    r.take(stored_key.data(), stored_key.size());
    uint64_t payload_size = r.u(8);
    r.take(checksum.data(), checksum.size());
    bool trusted = r.ok && std::memcmp(magic, kMagic, sizeof magic) == 0 && version == kFormatVersion &&
                   stored_key == key && payload_size <= kMaxPayloadBytes &&
                   payload_size == file.size() - kHeaderBytes &&
                   Sha256().update({r.at, payload_size}).finish() == checksum &&
                   decode_payload(r.at, payload_size, out);
    if (!trusted) {
      out = Artifact{};
      count(&KernelCacheStats::rejected_entries);
    }
    return trusted;
  }

  void warn(const std::string& what, const std::error_code& error) {
    std::fprintf(stderr, "moat: warning: kernel cache %s: %s; compiled kernels are kept in memory only\n",
                 what.c_str(), error.message().c_str());
  }

  // Writes the entry atomically (temporary file + rename); false on failure.
  bool write_entry(const Sha256::Digest& key, const Artifact& artifact) {
    std::vector<uint8_t> payload = encode_payload(artifact);
    std::vector<uint8_t> file(kMagic, kMagic + sizeof kMagic);
    put_u32(file, kFormatVersion);
    put_u32(file, 0);
    file.insert(file.end(), key.begin(), key.end());
    put_u64(file, payload.size());
    Sha256::Digest checksum = Sha256().update(payload).finish();
    file.insert(file.end(), checksum.begin(), checksum.end());
    file.insert(file.end(), payload.begin(), payload.end());

    std::filesystem::path final_path = entry_path(key);
    std::filesystem::path temp = dir / cat(".", to_hex(key), ".", ::getpid(), ".", temp_counter.fetch_add(1), ".tmp");
    std::error_code error;
    {
      std::ofstream out(temp, std::ios::binary | std::ios::trunc);
      if (out) out.write(reinterpret_cast<const char*>(file.data()), static_cast<std::streamsize>(file.size()));
      if (out) out.close();
      if (!out) error = std::error_code(errno ? errno : EIO, std::generic_category());
    }
    if (!error) std::filesystem::rename(temp, final_path, error);
    if (!error) return true;
    std::error_code ignored;
    std::filesystem::remove(temp, ignored);
    if (writable.exchange(false)) warn(cat("cannot write ", quoted(final_path.string())), error);
    return false;
  }
};

KernelCache::KernelCache(std::filesystem::path dir) : state_(std::make_unique<State>()) {
  if (dir.empty()) return;
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error || !std::filesystem::is_directory(dir, error)) {
    if (!error) error = std::make_error_code(std::errc::not_a_directory);
    state_->warn(cat("directory ", quoted(dir.string()), " is unusable"), error);
    return;
  }
  state_->dir = std::move(dir);
  state_->writable = true;
}

KernelCache::~KernelCache() = default;

Artifact KernelCache::get_or_compile(backends::Device& device, const Artifact& source) {
  State& s = *state_;
  Sha256::Digest key = key_digest(source, device.compile_fingerprint());
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    auto it = s.memory.find(key);
    if (it != s.memory.end()) {
      s.stats.memory_hits += 1;
      return it->second;
    }
  }
  Artifact binary;
  bool from_disk = !s.dir.empty() && s.read_entry(key, binary);
  if (!from_disk) {
    binary = device.compile(source);
    if (s.writable && !s.write_entry(key, binary)) s.count(&KernelCacheStats::write_failures);
  }
  std::lock_guard<std::mutex> lock(s.mutex);
  (from_disk ? s.stats.disk_hits : s.stats.compiles) += 1;
  s.memory.try_emplace(key, binary);
  return binary;
}

KernelCacheStats KernelCache::stats() const {
  std::lock_guard<std::mutex> lock(state_->mutex);
  return state_->stats;
}

std::string KernelCache::report() const {
  KernelCacheStats s = stats();
  std::string where = state_->dir.empty() ? std::string("in memory") : cat("in ", state_->dir.string());
  return cat("kernel cache: ", s.hits(), " hits (", s.memory_hits, " memory, ", s.disk_hits, " disk), ", s.compiles,
             " compiles, ", s.rejected_entries, " rejected entries, ", s.write_failures, " write failures, ", where);
}

std::filesystem::path KernelCache::dir() const { return state_->dir; }

std::string kernel_cache_key(const Artifact& source, std::string_view fingerprint) {
  return to_hex(key_digest(source, fingerprint));
}

std::filesystem::path default_kernel_cache_dir(const char* moat_cache_dir_env, const char* xdg_cache_home_env,
                                               const char* home_env) {
  auto set = [](const char* v) { return v != nullptr && v[0] != '\0'; };
  if (set(moat_cache_dir_env)) return moat_cache_dir_env;
  if (set(xdg_cache_home_env) && xdg_cache_home_env[0] == '/')
    return std::filesystem::path(xdg_cache_home_env) / "moatless" / "kernels";
  if (set(home_env)) return std::filesystem::path(home_env) / ".cache" / "moatless" / "kernels";
  return {};
}

}  // namespace moat::runtime
