// The OpenCL backend over whatever OpenCL device the machine has (PoCL's CPU device
// on the build machines): hand-written OpenCL C kernels compiled, cached as "clbin",
// loaded and launched. Every device test skips, saying why, when no OpenCL device is
// found; the "not available" path is tested with a library name that cannot load.
#include <doctest/doctest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <numeric>
#include <vector>

#include "backends/cpu/llvm_bitcode.h"
#include "backends/device.h"
#include "backends/opencl/clbin.h"
#include "backends/opencl/opencl.h"
#include "support/error.h"
#include "tests/skip.h"
#include "tests/user_error_of.h"

using namespace moat;
using namespace moat::backends;
using moat::testing::user_error_of;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

bool has(const std::vector<std::string>& items, const std::string& item) {
  return std::find(items.begin(), items.end(), item) != items.end();
}

// opencl:0, or nullptr after skipping the test case, saying why (tests/skip.h).
std::unique_ptr<Device> opencl_or_skip() {
  opencl::Probe probe = opencl::probe();
  if (!probe.status.available) {
    moat::testing::skip("no OpenCL device (" + probe.status.detail + ")");
    return nullptr;
  }
  return open_device("opencl:0");
}

std::unique_ptr<Module> build(Device& device, const char* source, std::vector<std::string> kernels) {
  return device.load(device.compile(Artifact::text("cl", source, std::move(kernels))));
}

template <class T>
std::unique_ptr<Buffer> upload(Device& device, const std::vector<T>& values) {
  auto buffer = device.allocate(values.size() * sizeof(T));
  device.stream().write(*buffer, 0, values.data(), values.size() * sizeof(T));
  return buffer;
}

template <class T>
std::vector<T> download(Device& device, const Buffer& buffer) {
  std::vector<T> out(buffer.size() / sizeof(T));
  device.stream().synchronize();
  device.stream().read(buffer, 0, out.data(), out.size() * sizeof(T));
  return out;
}

constexpr const char* kSaxpy = R"(
__kernel void saxpy(__global float* y, __global const float* x, float a, long n) {
  long i = get_global_id(0);
  if (i < n) y[i] = a * x[i] + y[i];
}
)";

// One partial sum per work-group of 128 items: a tree reduction in local memory.
constexpr const char* kGroupSum = R"(
#define ITEMS 128
__kernel void group_sum(__global const float* x, __global float* sums) {
  __local float partial[ITEMS];
  int item = get_local_id(0);
  partial[item] = x[get_global_id(0)];
  barrier(CLK_LOCAL_MEM_FENCE);
  for (int half_ = ITEMS / 2; half_ > 0; half_ /= 2) {
    if (item < half_) partial[item] += partial[item + half_];
    barrier(CLK_LOCAL_MEM_FENCE);
  }
  if (item == 0) sums[get_group_id(0)] = partial[0];
}
)";

// Each work-item records where it is: group and local ids, per dimension.
constexpr const char* kWhere = R"(
__kernel void where(__global long* out) {
  size_t x = get_global_id(0), y = get_global_id(1), z = get_global_id(2);
  size_t at = x + get_global_size(0) * (y + get_global_size(1) * z);
  long code = 0;
  for (int d = 2; d >= 0; --d) code = code * 100 + get_group_id(d) * 10 + get_local_id(d);
  out[at] = code * 10 + get_work_dim();
}
)";

// saxpy in LLVM IR for spir64 (SPIR 1.2: OpenCL address spaces, spir_kernel, Itanium-mangled built-ins).
constexpr const char* kSpirSaxpy = R"(
target datalayout = "e-i64:64-v16:16-v24:32-v32:32-v48:64-v96:128-v192:256-v256:256-v512:512-v1024:1024"
target triple = "spir64-unknown-unknown"

declare spir_func i64 @_Z13get_global_idj(i32)

define spir_kernel void @saxpy_spir(float addrspace(1)* %y, float addrspace(1)* %x, float %a, i64 %n)
    !kernel_arg_addr_space !1 !kernel_arg_access_qual !2 !kernel_arg_type !3 !kernel_arg_base_type !3
    !kernel_arg_type_qual !4 {
entry:
  %i = call spir_func i64 @_Z13get_global_idj(i32 0)
  %in = icmp slt i64 %i, %n
  br i1 %in, label %body, label %done
body:
  %px = getelementptr inbounds float, float addrspace(1)* %x, i64 %i
  %py = getelementptr inbounds float, float addrspace(1)* %y, i64 %i
  %xv = load float, float addrspace(1)* %px, align 4
  %yv = load float, float addrspace(1)* %py, align 4
  %ax = fmul float %a, %xv
  %r = fadd float %ax, %yv
  store float %r, float addrspace(1)* %py, align 4
  br label %done
done:
  ret void
}

!opencl.spir.version = !{!0}
!opencl.ocl.version = !{!0}
!0 = !{i32 1, i32 2}
!1 = !{i32 1, i32 1, i32 0, i32 0}
!2 = !{!"none", !"none", !"none", !"none"}
!3 = !{!"float*", !"float*", !"float", !"long"}
!4 = !{!"", !"", !"", !""}
)";

// Runs saxpy-shaped `kernel` (y, x, a, n) over n = 1000 elements in groups of 64 and
// checks y = a * x + y, with the elements past n untouched.
void check_saxpy(Device& device, Module& module, const char* kernel) {
  constexpr int64_t n = 1000, items = 64, groups = (n + items - 1) / items;
  std::vector<float> x(groups * items), y(groups * items);
  for (size_t i = 0; i < x.size(); ++i) {
    x[i] = static_cast<float>(i) * 0.5f;
    y[i] = 3.0f - static_cast<float>(i);
  }
  auto xb = upload(device, x), yb = upload(device, y);
  Grid grid;
  grid.groups[0] = groups;
  grid.items[0] = items;
  KernelArg args[] = {KernelArg::of(*yb), KernelArg::of(*xb), KernelArg::of_f32(2.0f), KernelArg::of_i64(n)};
  device.stream().launch(module.kernel(kernel), grid, args);
  std::vector<float> out = download<float>(device, *yb);
  for (size_t i = 0; i < out.size(); ++i) {
    float expected = i < static_cast<size_t>(n) ? 2.0f * x[i] + y[i] : y[i];
    if (out[i] != expected) {
      CHECK_MESSAGE(out[i] == expected, kernel, ": element ", i);
      return;
    }
  }
}

}  // namespace

TEST_CASE("opencl: not available when the ICD loader cannot be loaded") {
  opencl::Probe probe = opencl::probe("libmoat-no-such-OpenCL.so.1");
  CHECK_FALSE(probe.status.available);
  CHECK(probe.status.backend == "opencl");
  CHECK(probe.status.detail.rfind("not available: ", 0) == 0);
  CHECK(contains(probe.status.detail, "libmoat-no-such-OpenCL.so.1"));
  CHECK(probe.devices.empty());
  CHECK(opencl::open_device(0, "libmoat-no-such-OpenCL.so.1") == nullptr);

  DeviceReport report = enumerate_devices();
  auto status = std::find_if(report.backends.begin(), report.backends.end(),
                             [](const BackendStatus& s) { return s.backend == "opencl"; });
  REQUIRE(status != report.backends.end());
  CHECK((status->available || status->detail.rfind("not available: ", 0) == 0));
}

TEST_CASE("opencl: clbin keeps the build options with the binary") {
  opencl::ClBinary program{"-cl-std=CL1.2", {1, 2, 3, 4}};
  std::vector<uint8_t> bytes = opencl::encode_clbin(program);
  opencl::ClBinary back = opencl::decode_clbin(bytes);
  CHECK(back.options == program.options);
  CHECK(back.binary == program.binary);
  CHECK(contains(user_error_of([] { opencl::decode_clbin(std::vector<uint8_t>{'p', 'o', 'c', 'l'}); }),
                 "compile the kernel source again"));
  bytes.resize(bytes.size() - 4);  // options but no binary
  CHECK(contains(user_error_of([&] { opencl::decode_clbin(bytes); }), "truncated"));
}

TEST_CASE("opencl: device properties and open_device") {
  auto device = opencl_or_skip();
  if (!device) return;
  const DeviceProperties& p = device->properties();
  CHECK(p.info.id == "opencl:0");
  CHECK(p.info.backend == "opencl");
  CHECK_FALSE(p.info.name.empty());
  CHECK(p.info.memory_bytes > 0);
  CHECK(p.info.compute_units >= 1);
  CHECK(p.max_work_group_size >= 1);
  CHECK(p.local_memory_bytes > 0);
  CHECK(p.vector_bits >= 32);
  CHECK(p.vector_bits % 32 == 0);
  bool sub_groups = has(p.info.features, "cl_khr_subgroups") || has(p.info.features, "cl_intel_subgroups");
  CHECK((sub_groups ? p.sub_group_size >= 1 : p.sub_group_size == 1));
  for (const char* dtype : {"f32", "f16", "i64", "i32", "i8", "u8", "bool"}) CHECK(has(p.dtypes, dtype));
  std::vector<std::string> types{"f32", "f16"};
  CHECK(device->supports_op("matmul", types));
  std::string fingerprint = device->compile_fingerprint();
  CHECK(contains(fingerprint, p.info.name));
  CHECK(contains(fingerprint, "-cl-std=CL1.2"));
  CHECK(fingerprint == open_device("opencl:0")->compile_fingerprint());

  DeviceReport report = enumerate_devices();
  CHECK(std::any_of(report.devices.begin(), report.devices.end(),
                    [](const DeviceInfo& d) { return d.id == "opencl:0" && d.backend == "opencl"; }));
  MESSAGE("opencl:0 is ", p.info.name, " (", p.info.arch, "): sub-group ", p.sub_group_size, ", ", p.vector_bits,
          "-bit vectors, features: ", join(p.info.features, " "));
}

TEST_CASE("opencl: an unknown device id names the available ones") {
  std::string message = user_error_of([] { open_device("opencl:99"); });
  CHECK(contains(message, "opencl:99"));
  CHECK(contains(message, "cpu"));
  if (opencl::probe().status.available) CHECK(contains(message, "opencl:0"));
  CHECK(contains(user_error_of([] { open_device("opencl:x"); }), "opencl:x"));
}

TEST_CASE("opencl: buffers are device copies, stream copies honour offsets") {
  auto device = opencl_or_skip();
  if (!device) return;
  std::vector<int32_t> host(64);
  std::iota(host.begin(), host.end(), 0);
  auto wrapped = device->wrap_host(host.data(), host.size() * sizeof(int32_t));
  CHECK(wrapped->host_pointer() == nullptr);
  CHECK(wrapped->size() == 256);
  host.assign(host.size(), -1);  // the device keeps the copy made by wrap_host
  std::vector<int32_t> back = download<int32_t>(*device, *wrapped);
  CHECK(back[0] == 0);
  CHECK(back[63] == 63);

  int32_t patch[2] = {1000, 1001};
  device->stream().write(*wrapped, 10 * sizeof(int32_t), patch, sizeof patch);
  int32_t read[3] = {};
  device->stream().read(*wrapped, 9 * sizeof(int32_t), read, sizeof read);
  CHECK(read[0] == 9);
  CHECK(read[1] == 1000);
  CHECK(read[2] == 1001);
  CHECK(device->allocate(0)->size() == 0);
  CHECK_THROWS_AS(device->stream().read(*wrapped, 250, read, 8), InternalError);
}

TEST_CASE("opencl: saxpy with a float and a long scalar") {
  auto device = opencl_or_skip();
  if (!device) return;
  // A source no run has built before, so that PoCL's own kernel cache (~/.cache/pocl)
  // cannot hide a compiler that crashes in this process (see backends/opencl/cl_api.cpp).
  // (PoCL keys its cache by the preprocessed source: a comment would not do.)
  std::string source =
      cat(kSaxpy, "__kernel void run_", std::chrono::steady_clock::now().time_since_epoch().count(), "(void) {}\n");
  auto module = build(*device, source.c_str(), {"saxpy"});
  check_saxpy(*device, *module, "saxpy");
}

TEST_CASE("opencl: work-group reduction in local memory with barriers") {
  auto device = opencl_or_skip();
  if (!device) return;
  if (device->properties().max_work_group_size < 128) {
    moat::testing::skip(moat::cat("opencl:0 takes at most ", device->properties().max_work_group_size,
                                  " work-items per group"));
    return;
  }
  constexpr int64_t groups = 37, items = 128;
  std::vector<float> x(groups * items);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i % 97) - 40.0f;  // exact sums in f32
  auto xb = upload(*device, x);
  auto sums = device->allocate(groups * sizeof(float));
  auto module = build(*device, kGroupSum, {"group_sum"});
  Grid grid;
  grid.groups[0] = groups;
  grid.items[0] = items;
  KernelArg args[] = {KernelArg::of(*xb), KernelArg::of(*sums)};
  device->stream().launch(module->kernel("group_sum"), grid, args);
  std::vector<float> out = download<float>(*device, *sums);
  for (int64_t g = 0; g < groups; ++g) {
    float expected = 0;
    for (int64_t i = 0; i < items; ++i) expected += x[g * items + i];
    CHECK(out[g] == expected);
  }
  grid.local_bytes = 256;  // dynamic local memory is not supported (Kernel IR declares it statically)
  CHECK_THROWS_AS(device->stream().launch(module->kernel("group_sum"), grid, args), InternalError);
}

TEST_CASE("opencl: multi-dimensional grids map groups and items per dimension") {
  auto device = opencl_or_skip();
  if (!device) return;
  auto module = build(*device, kWhere, {"where"});
  struct Case {
    int64_t groups[3], items[3];
    int dims;  // the work dimension the launch should use
  };
  for (const Case& c : {Case{{3, 2, 2}, {4, 2, 1}, 3}, Case{{5, 3, 1}, {2, 4, 1}, 2}, Case{{7, 1, 1}, {3, 1, 1}, 1}}) {
    Grid grid;
    int64_t global[3];
    for (int d = 0; d < 3; ++d) {
      grid.groups[d] = c.groups[d];
      grid.items[d] = c.items[d];
      global[d] = c.groups[d] * c.items[d];
    }
    auto out = device->allocate(global[0] * global[1] * global[2] * sizeof(int64_t));
    KernelArg args[] = {KernelArg::of(*out)};
    device->stream().launch(module->kernel("where"), grid, args);
    std::vector<int64_t> codes = download<int64_t>(*device, *out);
    size_t wrong = 0;
    for (int64_t z = 0; z < global[2]; ++z)
      for (int64_t y = 0; y < global[1]; ++y)
        for (int64_t x = 0; x < global[0]; ++x) {
          int64_t at[3] = {x, y, z}, code = 0;
          for (int d = 2; d >= 0; --d) code = code * 100 + (at[d] / c.items[d]) * 10 + at[d] % c.items[d];
          wrong += codes[x + global[0] * (y + global[1] * z)] != code * 10 + c.dims;
        }
    CHECK_MESSAGE(wrong == 0, "grid with ", c.dims, " dimensions");
  }
}

TEST_CASE("opencl: compile -> clbin -> load round trip") {
  auto device = opencl_or_skip();
  if (!device) return;
  Artifact binary = device->compile(Artifact::text("cl", kSaxpy, {"saxpy"}));
  CHECK(binary.format == "clbin");
  CHECK(binary.kernels == std::vector<std::string>{"saxpy"});
  opencl::ClBinary decoded = opencl::decode_clbin(binary.bytes);
  CHECK(decoded.options == "-cl-std=CL1.2");
  CHECK_FALSE(decoded.binary.empty());
  // A fresh device (as after a restart with a warm kernel cache) loads the stored binary.
  auto fresh = open_device("opencl:0");
  auto module = fresh->load(binary);
  check_saxpy(*fresh, *module, "saxpy");

  Artifact garbage = binary;
  garbage.bytes = opencl::encode_clbin({"-cl-std=CL1.2", std::vector<uint8_t>(64, 0x5a)});
  CHECK(contains(user_error_of([&] { fresh->load(garbage); }), "compile the source again"));
  CHECK(contains(user_error_of([&] { fresh->load(Artifact::text("cl", kSaxpy, {"saxpy"})); }), "compile it first"));
  CHECK(contains(user_error_of([&] { fresh->compile(binary); }), "already compiled"));
  CHECK(contains(user_error_of([&] { fresh->compile(Artifact::text("ptx", "", {"saxpy"})); }), "\"ptx\""));
}

TEST_CASE("opencl: a build error carries the compiler's log, unknown kernels are named") {
  auto device = opencl_or_skip();
  if (!device) return;
  constexpr const char* kBroken = "__kernel void broken(__global float* x) { x[0] = undefined_thing; }";
  std::string message = user_error_of([&] { device->compile(Artifact::text("cl", kBroken, {"broken"})); });
  CHECK(contains(message, "broken"));
  CHECK(contains(message, "undefined_thing"));  // from the driver's build log
  CHECK(contains(message, "Build log:"));

  message = user_error_of([&] { device->compile(Artifact::text("cl", kSaxpy, {"saxpy", "axpby"})); });
  CHECK(contains(message, "axpby"));
  CHECK(contains(message, "defines: saxpy"));

  auto module = build(*device, kSaxpy, {"saxpy"});
  message = user_error_of([&] { module->kernel("axpby"); });
  CHECK(contains(message, "axpby"));
  CHECK(contains(message, "saxpy"));
}

TEST_CASE("opencl: SPIR (spir64 LLVM bitcode) and SPIR-V artifacts") {
  auto device = opencl_or_skip();
  if (!device) return;
  const std::vector<std::string>& features = device->properties().info.features;
  Artifact spir;
  spir.format = "bc-spir";
  spir.bytes = cpu::assemble_llvm_bitcode(kSpirSaxpy);
  spir.kernels = {"saxpy_spir"};
  if (has(features, "cl_khr_spir")) {
    Artifact binary = device->compile(spir);
    CHECK(opencl::decode_clbin(binary.bytes).options == "-x spir -spir-std=1.2");
    auto module = device->load(binary);
    check_saxpy(*device, *module, "saxpy_spir");
  } else {
    CHECK(contains(user_error_of([&] { device->compile(spir); }), "cl_khr_spir"));
  }

  bool spirv = std::any_of(features.begin(), features.end(),
                           [](const std::string& f) { return f.rfind("il:SPIR-V", 0) == 0; });
  Artifact spv;
  spv.format = "spv";
  spv.bytes = {0x03, 0x02, 0x23, 0x07};  // the SPIR-V magic only: rejected by the device or by us
  spv.kernels = {"saxpy"};
  std::string message = user_error_of([&] { device->compile(spv); });
  if (!spirv) CHECK(contains(message, "does not take SPIR-V"));
}
