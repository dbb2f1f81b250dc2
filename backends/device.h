// The unified device API: registry -> device -> stream -> buffer, plus modules (a
// loaded compiled artifact) and kernel launches over a grid.
//
// Backends know nothing of the IRs: they take an Artifact (text or bytes in a target's
// format, produced by a jit/ emitter), compile it to the device's binary form, load it
// and launch its kernels by name. One backend per folder (backends/cpu, opencl, cuda,
// hip); vendor runtimes are loaded with dlopen, so a missing driver makes a backend
// "not available", never a link error or a crash.
//
// Kernel ABI (every target): a kernel takes its arguments in the order its Artifact
// declares them: buffers (device memory) and scalars (i64 or f32). The grid is
// groups[3] work-groups of items[3] work-items each (CUDA: grid of blocks of threads;
// OpenCL: global = groups * items, local = items). On the CPU a work-group is one task
// of the thread pool and the kernel itself iterates its work-items (the exact CPU
// symbol signature and argument packing: backends/cpu/kernel_abi.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "backends/registry.h"

namespace moat::backends {

// A kernel source or binary. `format` names the encoding: "ll" (LLVM IR text), "o"
// (host object file), "cl" (OpenCL C), "spv", "ptx", "cubin", "hip", "hsaco".
struct Artifact {
  std::string format;
  std::vector<uint8_t> bytes;        // text formats hold their text (no trailing NUL)
  std::vector<std::string> kernels;  // entry points, by name

  static Artifact text(std::string format, std::string_view text, std::vector<std::string> kernels);
  std::string_view as_text() const { return {reinterpret_cast<const char*>(bytes.data()), bytes.size()}; }
};

// What a device can do, for schedules (jit/) and the per-op capability query.
struct DeviceProperties {
  DeviceInfo info;                   // id, backend, name, vendor, arch, memory, features
  int max_work_group_size = 1;       // work-items per group
  int64_t local_memory_bytes = 0;    // work-group-local (shared) memory per group, bytes
  int sub_group_size = 1;            // warp / wavefront / SIMD width in work-items; 1: none
  int vector_bits = 128;             // widest native float vector, bits (CPU: 512 with AVX-512)
  std::vector<std::string> dtypes;   // element types the device computes with: "f32", "f16", ...
  bool host_memory = false;          // computes from host DRAM: the CPU backend, OpenCL CPU devices (PoCL)
  double memory_bandwidth = 0;       // bytes/s of device memory by its specification; 0: unknown
  // The driver finishes compiling a kernel at its first launch (OpenCL drivers such as
  // PoCL specialise a kernel for its work-group size then): a session runs a new plan
  // whose kernels it had to compile once before it is timed, so that this compile is not
  // counted as evaluation.
  bool first_launch_compiles = false;
};

// The bytes of the buffers a device holds: device memory (allocate, wrap_host copies)
// and host memory a zero-copy wrap_host lends it (the CPU reading weights in place).
// `peak` is the most held at once since the device opened or reset_peak(). Thread-safe.
class MemoryLedger {
 public:
  void add(uint64_t bytes);
  void remove(uint64_t bytes);
  uint64_t live() const { return live_.load(); }  // bytes
  uint64_t peak() const { return peak_.load(); }  // bytes
  void reset_peak() { peak_.store(live_.load()); }

 private:
  std::atomic<uint64_t> live_{0}, peak_{0};
};

// Offsets of Device::view are multiples of this many bytes (OpenCL sub-buffers need
// the device's base address alignment, at most 4 KiB in practice).
inline constexpr uint64_t kViewAlignment = 4096;

class Buffer {
 public:
  Buffer() = default;
  Buffer(const Buffer&) = delete;  // counted once, given back once
  Buffer& operator=(const Buffer&) = delete;
  virtual ~Buffer();  // gives its bytes back to the ledger that counted it
  virtual uint64_t size() const = 0;  // bytes
  // Host-visible address of the contents when the device shares host memory (CPU),
  // else nullptr: use Stream::write / read.
  virtual void* host_pointer() const = 0;

 private:
  friend class Device;
  std::shared_ptr<MemoryLedger> ledger_;  // null: not counted
  uint64_t counted_ = 0;                  // bytes
};

// A scalar or buffer argument of a launch, in the kernel's declared order.
struct KernelArg {
  enum class Kind : uint8_t { Buffer, I64, F32 } kind = Kind::I64;
  const Buffer* buffer = nullptr;
  int64_t i64 = 0;
  float f32 = 0;

  static KernelArg of(const Buffer& b) { return {Kind::Buffer, &b, 0, 0}; }
  static KernelArg of_i64(int64_t v) { return {Kind::I64, nullptr, v, 0}; }
  static KernelArg of_f32(float v) { return {Kind::F32, nullptr, 0, v}; }
};

struct Grid {
  int64_t groups[3] = {1, 1, 1};
  int64_t items[3] = {1, 1, 1};
  int64_t local_bytes = 0;  // dynamic work-group-local memory, bytes
};

class Kernel {
 public:
  virtual ~Kernel() = default;
  virtual const std::string& name() const = 0;
};

// A loaded artifact; owns its kernels.
class Module {
 public:
  virtual ~Module() = default;
  // UserError naming the kernel when the module has no such entry point.
  virtual Kernel& kernel(std::string_view name) = 0;
};

// What crossed between the host and a device, counted since it opened: what the
// runtime promises per decoded token (token ids in, logits out, nothing else) is
// checked against these. Thread-safe.
struct DeviceTraffic {
  std::atomic<uint64_t> h2d_bytes{0};    // host -> device copies (writes, wrap_host copies)
  std::atomic<uint64_t> d2h_bytes{0};    // device -> host copies (reads)
  std::atomic<uint64_t> launches{0};     // kernel launches
  std::atomic<uint64_t> allocations{0};  // device allocations (allocate, copying wrap_host)

  struct Snapshot {
    uint64_t h2d_bytes = 0, d2h_bytes = 0, launches = 0, allocations = 0;
    Snapshot operator-(const Snapshot& o) const {
      return {h2d_bytes - o.h2d_bytes, d2h_bytes - o.d2h_bytes, launches - o.launches, allocations - o.allocations};
    }
  };
  Snapshot snapshot() const { return {h2d_bytes.load(), d2h_bytes.load(), launches.load(), allocations.load()}; }
};

// An in-order queue of work on one device (CUDA stream, OpenCL command queue; the CPU
// runs each call to completion on its thread pool). The public calls count traffic();
// backends implement the do_ ones.
class Stream {
 public:
  virtual ~Stream() = default;
  void write(Buffer& dst, uint64_t offset, const void* src, uint64_t bytes) {
    traffic_.h2d_bytes += bytes;
    do_write(dst, offset, src, bytes);
  }
  void read(const Buffer& src, uint64_t offset, void* dst, uint64_t bytes) {
    traffic_.d2h_bytes += bytes;
    do_read(src, offset, dst, bytes);
  }
  void launch(Kernel& kernel, const Grid& grid, std::span<const KernelArg> args) {
    ++traffic_.launches;
    do_launch(kernel, grid, args);
  }
  virtual void synchronize() = 0;
  DeviceTraffic& traffic() { return traffic_; }

 protected:
  virtual void do_write(Buffer& dst, uint64_t offset, const void* src, uint64_t bytes) = 0;
  virtual void do_read(const Buffer& src, uint64_t offset, void* dst, uint64_t bytes) = 0;
  virtual void do_launch(Kernel& kernel, const Grid& grid, std::span<const KernelArg> args) = 0;

 private:
  DeviceTraffic traffic_;
};

class Device {
 public:
  virtual ~Device() = default;
  virtual const DeviceProperties& properties() const = 0;
  // Per-op capability query: whether kernels of Tensor IR op `op` (by name) over
  // element types `dtypes` (by name) can run here.
  virtual bool supports_op(std::string_view op, std::span<const std::string> dtypes) const = 0;

  // Device memory of `bytes` (counted in traffic().allocations).
  std::unique_ptr<Buffer> allocate(uint64_t bytes) {
    count_allocation();
    return do_allocate(bytes);
  }
  // Host memory the caller keeps alive (an mmap'd weight) as a buffer: zero-copy where
  // the device shares host memory, else a device copy made now.
  virtual std::unique_ptr<Buffer> wrap_host(const void* data, uint64_t bytes) = 0;

  // Bytes [offset, offset + bytes) of `parent` as a buffer of their own (a plan's
  // intermediates in one arena): not counted in memory() (the parent is), valid while
  // the parent lives. `offset` must be a multiple of kViewAlignment.
  virtual std::unique_ptr<Buffer> view(const Buffer& parent, uint64_t offset, uint64_t bytes) = 0;

  // Source -> the binary form load() takes (e.g. "ll" -> "o"); the kernel cache stores
  // the result. Compile errors are UserError with the compiler's log.
  virtual Artifact compile(const Artifact& source) = 0;
  virtual std::unique_ptr<Module> load(const Artifact& binary) = 0;
  // Everything that changes compile()'s output besides the source: target, arch, ISA
  // features, compiler version (part of the kernel cache key).
  virtual std::string compile_fingerprint() const = 0;

  virtual Stream& stream() = 0;  // the default stream
  // Host <-> device bytes, launches and allocations of this device (its stream's).
  DeviceTraffic::Snapshot traffic() { return stream().traffic().snapshot(); }

  // The bytes of this device's live buffers (every allocate / wrap_host result).
  MemoryLedger& memory() { return *memory_; }
  const MemoryLedger& memory() const { return *memory_; }

 protected:
  virtual std::unique_ptr<Buffer> do_allocate(uint64_t bytes) = 0;
  void count_allocation() { ++stream().traffic().allocations; }
  // What allocate() and wrap_host() return: `buffer`, counted in memory() until destroyed.
  std::unique_ptr<Buffer> counted(std::unique_ptr<Buffer> buffer);

 private:
  std::shared_ptr<MemoryLedger> memory_ = std::make_shared<MemoryLedger>();  // buffers may outlive the device
};

// Options of the CPU backend (read by the CLI, never from the environment here).
struct CpuOptions {
  int threads = 0;  // worker threads; 0: one per physical core
};

// The devices this machine has, opened. `id` as DeviceInfo::id ("cpu", "opencl:0").
// UserError naming the id and listing the available ones when there is no such device.
std::unique_ptr<Device> open_device(std::string_view id, const CpuOptions& cpu_options = {});

// The host CPU device (backends/cpu).
std::unique_ptr<Device> open_cpu_device(const CpuOptions& options);

}  // namespace moat::backends
