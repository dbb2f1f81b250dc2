// The kernel cache: memory and disk hits, warm starts, untrusted entries, keys.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>

#include "backends/device.h"
#include "runtime/kernel_cache.h"
#include "support/error.h"
#include "tests/backends/ll_kernels.h"

using namespace moat;
using namespace moat::backends;
namespace fs = std::filesystem;

namespace {

// A device whose compile() is a recognisable transformation, counted.
class FakeDevice final : public Device {
 public:
  explicit FakeDevice(std::string fingerprint) : fingerprint_(std::move(fingerprint)) {}
  const DeviceProperties& properties() const override { return properties_; }
  bool supports_op(std::string_view, std::span<const std::string>) const override { return true; }
  std::unique_ptr<Buffer> do_allocate(uint64_t) override { return nullptr; }
  std::unique_ptr<Buffer> wrap_host(const void*, uint64_t) override { return nullptr; }
  std::unique_ptr<Buffer> view(const Buffer&, uint64_t, uint64_t) override { return nullptr; }
  Artifact compile(const Artifact& source) override {
    compiles += 1;
    Artifact out;
    out.format = "bin";
    out.bytes.assign(source.bytes.rbegin(), source.bytes.rend());
    out.bytes.push_back(0xff);
    out.kernels = source.kernels;
    return out;
  }
  std::unique_ptr<Module> load(const Artifact&) override { return nullptr; }
  std::string compile_fingerprint() const override { return fingerprint_; }
  Stream& stream() override { throw InternalError("no stream"); }

  int compiles = 0;

 private:
  std::string fingerprint_;
  DeviceProperties properties_;
};

// A fresh, empty directory under the system temporary directory, removed at the end.
struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name)
      : path(fs::temp_directory_path() / ("moat_kernel_cache_" + name + "_" + std::to_string(::getpid()))) {
    fs::remove_all(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::vector<fs::path> entries(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path());
  return out;
}

std::vector<char> read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_file(const fs::path& path, const std::vector<char>& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

const Artifact kSource = Artifact::text("ll", "define void @k() { ret void }", {"k"});

bool same(const Artifact& a, const Artifact& b) {
  return a.format == b.format && a.bytes == b.bytes && a.kernels == b.kernels;
}

}  // namespace

TEST_CASE("miss, then memory hit, memory-only cache") {
  FakeDevice device("fake-1");
  for (const char* dir : {"", "disk"}) {
    TempDir temp("miss");
    runtime::KernelCache cache(dir[0] ? temp.path : fs::path());
    device.compiles = 0;
    Artifact first = cache.get_or_compile(device, kSource);
    Artifact second = cache.get_or_compile(device, kSource);
    CHECK(device.compiles == 1);
    CHECK(same(first, second));
    CHECK(same(first, device.compile(kSource)));
    runtime::KernelCacheStats s = cache.stats();
    CHECK(s.compiles == 1);
    CHECK(s.memory_hits == 1);
    CHECK(s.disk_hits == 0);
    CHECK(s.hits() == 1);
    CHECK(cache.report().find("1 hits (1 memory, 0 disk), 1 compiles") != std::string::npos);
    CHECK(cache.dir() == (dir[0] ? temp.path : fs::path()));
  }
}

TEST_CASE("a warm start from disk compiles nothing") {
  TempDir temp("warm");
  FakeDevice device("fake-1");
  Artifact other = Artifact::text("ll", "define void @j() { ret void }", {"j"});
  {
    runtime::KernelCache cache(temp.path);
    cache.get_or_compile(device, kSource);
    cache.get_or_compile(device, other);
  }
  CHECK(device.compiles == 2);
  auto files = entries(temp.path);
  CHECK(files.size() == 2);  // no temporary files left behind
  for (const auto& f : files) CHECK(f.extension() == ".kc");

  runtime::KernelCache warm(temp.path);
  Artifact a = warm.get_or_compile(device, kSource);
  Artifact b = warm.get_or_compile(device, other);
  warm.get_or_compile(device, kSource);
  CHECK(device.compiles == 2);
  CHECK(warm.stats().compiles == 0);
  CHECK(warm.stats().disk_hits == 2);
  CHECK(warm.stats().memory_hits == 1);
  FakeDevice reference("fake-1");
  CHECK(same(a, reference.compile(kSource)));
  CHECK(same(b, reference.compile(other)));
}

TEST_CASE("corrupt, truncated and misplaced entries are recompiled and rewritten, never trusted") {
  TempDir temp("corrupt");
  FakeDevice device("fake-1");
  { runtime::KernelCache(temp.path).get_or_compile(device, kSource); }
  fs::path entry = temp.path / (runtime::kernel_cache_key(kSource, "fake-1") + ".kc");
  REQUIRE(fs::exists(entry));
  const std::vector<char> good = read_file(entry);
  FakeDevice reference("fake-1");
  const Artifact expected = reference.compile(kSource);

  auto flip_last = [](std::vector<char> bytes) { bytes.back() ^= 0x40; return bytes; };
  auto flip_header = [](std::vector<char> bytes) { bytes[3] ^= 1; return bytes; };
  auto truncate_to = [](size_t n) {
    return [n](std::vector<char> bytes) { bytes.resize(std::min(n, bytes.size())); return bytes; };
  };
  auto grow = [](std::vector<char> bytes) { bytes.push_back(0); return bytes; };
  struct Damage {
    const char* name;
    std::function<std::vector<char>(std::vector<char>)> apply;
  };
  const Damage damages[] = {{"payload bit flip", flip_last},   {"magic bit flip", flip_header},
                            {"truncated header", truncate_to(20)}, {"truncated payload", truncate_to(good.size() - 3)},
                            {"empty", truncate_to(0)},           {"trailing byte", grow}};
  for (const Damage& damage : damages) {
    CAPTURE(damage.name);
    write_file(entry, damage.apply(good));
    device.compiles = 0;
    runtime::KernelCache cache(temp.path);
    Artifact got = cache.get_or_compile(device, kSource);
    CHECK(same(got, expected));
    CHECK(device.compiles == 1);
    CHECK(cache.stats().rejected_entries == 1);
    CHECK(read_file(entry) == good);  // rewritten
    runtime::KernelCache again(temp.path);
    again.get_or_compile(device, kSource);
    CHECK(again.stats().disk_hits == 1);
  }

  // A valid entry stored under another key's name.
  Artifact other = Artifact::text("ll", "define void @j() { ret void }", {"j"});
  fs::path other_entry = temp.path / (runtime::kernel_cache_key(other, "fake-1") + ".kc");
  fs::copy_file(entry, other_entry);
  device.compiles = 0;
  runtime::KernelCache cache(temp.path);
  CHECK(same(cache.get_or_compile(device, other), reference.compile(other)));
  CHECK(device.compiles == 1);
  CHECK(cache.stats().rejected_entries == 1);
}

TEST_CASE("keys change with the fingerprint, the source, its format and its kernel names") {
  std::string base = runtime::kernel_cache_key(kSource, "fake-1");
  CHECK(base.size() == 64);
  CHECK(base == runtime::kernel_cache_key(kSource, "fake-1"));
  CHECK(base != runtime::kernel_cache_key(kSource, "fake-2"));
  Artifact changed = kSource;
  changed.bytes.push_back(' ');
  CHECK(base != runtime::kernel_cache_key(changed, "fake-1"));
  changed = kSource;
  changed.format = "cl";
  CHECK(base != runtime::kernel_cache_key(changed, "fake-1"));
  changed = kSource;
  changed.kernels = {"k", "k2"};
  CHECK(base != runtime::kernel_cache_key(changed, "fake-1"));

  TempDir temp("fingerprint");
  FakeDevice one("fake-1"), two("fake-2");
  runtime::KernelCache cache(temp.path);
  cache.get_or_compile(one, kSource);
  cache.get_or_compile(two, kSource);
  CHECK(one.compiles == 1);
  CHECK(two.compiles == 1);
  CHECK(entries(temp.path).size() == 2);
}

TEST_CASE("an unusable directory: warned about, the cache works in memory") {
  TempDir temp("unusable");
  fs::create_directories(temp.path);
  write_file(temp.path / "file", {'x'});
  FakeDevice device("fake-1");
  runtime::KernelCache cache(temp.path / "file" / "kernels");  // a path through a regular file
  CHECK(cache.dir().empty());
  cache.get_or_compile(device, kSource);
  cache.get_or_compile(device, kSource);
  CHECK(device.compiles == 1);
  CHECK(cache.stats().memory_hits == 1);
  CHECK(cache.report().find("in memory") != std::string::npos);
}

TEST_CASE("a directory that stops being writable: warned about once, later entries stay in memory") {
  TempDir temp("gone");
  FakeDevice device("fake-1");
  runtime::KernelCache cache(temp.path);
  REQUIRE(cache.dir() == temp.path);
  fs::remove_all(temp.path);
  write_file(temp.path, {'x'});  // the directory is now a regular file
  Artifact other = Artifact::text("ll", "define void @j() { ret void }", {"j"});
  FakeDevice reference("fake-1");
  CHECK(same(cache.get_or_compile(device, kSource), reference.compile(kSource)));
  CHECK(same(cache.get_or_compile(device, other), reference.compile(other)));
  cache.get_or_compile(device, other);
  CHECK(device.compiles == 2);
  CHECK(cache.stats().write_failures == 1);  // no further writes after the first failure
  CHECK(cache.stats().memory_hits == 1);
  fs::remove(temp.path);
}

TEST_CASE("compile errors propagate and nothing is cached") {
  TempDir temp("errors");
  auto cpu = open_device("cpu", {1});
  runtime::KernelCache cache(temp.path);
  Artifact broken = Artifact::text("ll", "define void @k(", {"k"});
  CHECK_THROWS_AS(cache.get_or_compile(*cpu, broken), UserError);
  CHECK_THROWS_AS(cache.get_or_compile(*cpu, broken), UserError);
  CHECK((!fs::exists(temp.path) || entries(temp.path).empty()));
}

TEST_CASE("the CPU device through the cache: a warm start loads the stored object and runs it") {
  TempDir temp("cpu");
  auto cpu = open_device("cpu", {2});
  Artifact source = Artifact::text("ll", testing::kSaxpyLl, {"saxpy"});
  { runtime::KernelCache(temp.path).get_or_compile(*cpu, source); }
  runtime::KernelCache warm(temp.path);
  Artifact binary = warm.get_or_compile(*cpu, source);
  CHECK(warm.stats().disk_hits == 1);
  CHECK(warm.stats().compiles == 0);
  CHECK(binary.format == "o");
  auto module = cpu->load(binary);
  std::vector<float> x{1, 2, 3}, y{1, 1, 1};
  auto xb = cpu->wrap_host(x.data(), 12);
  auto yb = cpu->wrap_host(y.data(), 12);
  Grid grid;
  grid.groups[0] = 3;
  KernelArg args[] = {KernelArg::of(*xb), KernelArg::of(*yb), KernelArg::of_f32(2.0f), KernelArg::of_i64(3)};
  cpu->stream().launch(module->kernel("saxpy"), grid, args);
  CHECK(y == std::vector<float>{3, 5, 7});
}

TEST_CASE("default_kernel_cache_dir: MOAT_CACHE_DIR, then XDG_CACHE_HOME, then HOME") {
  CHECK(runtime::default_kernel_cache_dir("/m", "/x", "/h") == fs::path("/m"));
  CHECK(runtime::default_kernel_cache_dir("", "/x", "/h") == fs::path("/x/moatless/kernels"));
  CHECK(runtime::default_kernel_cache_dir(nullptr, nullptr, "/h") == fs::path("/h/.cache/moatless/kernels"));
  CHECK(runtime::default_kernel_cache_dir(nullptr, "relative", "/h") == fs::path("/h/.cache/moatless/kernels"));
  CHECK(runtime::default_kernel_cache_dir(nullptr, nullptr, nullptr).empty());
  CHECK(runtime::default_kernel_cache_dir("", "", "").empty());
}
