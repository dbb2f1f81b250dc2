// The CUDA backend: with an NVIDIA GPU, a hand-written PTX saxpy is compiled to a cubin,
// loaded and launched; without one, the backend is cleanly "not available" and opening
// a device is a UserError saying why (the test says it skipped and why).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/cuda/cuda_backend.h"
#include "backends/device.h"
#include "support/error.h"
#include "tests/backends/gpu_kernels.h"
#include "tests/skip.h"
#include "tests/user_error_of.h"

using namespace moat;
using namespace moat::backends;
using moat::testing::user_error_of;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

BackendStatus cuda_status(const DeviceReport& report) {
  for (const BackendStatus& s : report.backends)
    if (s.backend == "cuda") return s;
  FAIL("no cuda line in the backend report");
  return {};
}

// Whether a CUDA device is present; when not, the test case is skipped (tests/skip.h), saying why.
bool cuda_present() {
  BackendStatus status = cuda_status(enumerate_devices());
  if (!status.available) testing::skip("no CUDA device: " + status.detail);
  return status.available;
}

}  // namespace

TEST_CASE("cuda backend: devices when present, a clean 'not available' when not") {
  DeviceReport report = enumerate_devices();
  BackendStatus status = cuda_status(report);
  size_t devices = std::count_if(report.devices.begin(), report.devices.end(),
                                 [](const DeviceInfo& d) { return d.backend == "cuda"; });
  if (!status.available) {
    MESSAGE("CUDA: ", status.detail);
    CHECK(status.detail.rfind("not available: ", 0) == 0);
    CHECK(devices == 0);
    std::string message = user_error_of([] { open_device("cuda:0"); });
    CHECK(contains(message, "cuda:0"));
    CHECK(contains(message, status.detail.substr(std::string("not available: ").size())));
    return;
  }
  CHECK(devices > 0);
  for (const DeviceInfo& d : report.devices) {
    if (d.backend != "cuda") continue;
    CHECK(d.id.rfind("cuda:", 0) == 0);
    CHECK(d.arch.rfind("sm_", 0) == 0);
    CHECK(d.vendor == "NVIDIA");
    CHECK(d.memory_bytes > 0);
    CHECK(d.compute_units > 0);
  }
  CHECK(contains(user_error_of([&] { open_device("cuda:" + std::to_string(devices)); }), "no device"));
}

TEST_CASE("open_device: cuda ids that are not a device ordinal") {
  for (std::string id : {"cuda:", "cuda:x", "cuda:-1", "cuda:0x"}) {
    CAPTURE(id);
    CHECK(contains(user_error_of([&] { open_device(id); }), id));
  }
}

TEST_CASE("cuda device: properties and a PTX saxpy compiled to a cubin") {
  if (!cuda_present()) return;
  auto device = open_device("cuda:0");
  const DeviceProperties& p = device->properties();
  CHECK(p.info.id == "cuda:0");
  CHECK(p.sub_group_size == 32);
  CHECK(p.max_work_group_size == 1024);
  CHECK(p.local_memory_bytes >= 48 * 1024);
  CHECK(std::find(p.dtypes.begin(), p.dtypes.end(), "f16") != p.dtypes.end());
  std::string fingerprint = device->compile_fingerprint();
  CHECK(contains(fingerprint, p.info.arch));
  CHECK(contains(fingerprint, "driver "));

  Artifact cubin = device->compile(Artifact::text("ptx", testing::kSaxpyPtx, {"saxpy"}));
  CHECK(cubin.format == "cubin");
  CHECK(cubin.kernels == std::vector<std::string>{"saxpy"});
  REQUIRE(cubin.bytes.size() > 4);
  CHECK(std::equal(cubin.bytes.begin(), cubin.bytes.begin() + 4, "\x7f" "ELF"));

  const int64_t n = 100003;  // not a multiple of the block
  const int64_t block = 256;
  std::vector<float> x(n), y(n);
  for (int64_t i = 0; i < n; ++i) {
    x[i] = static_cast<float>(i % 1000) * 0.5f;
    y[i] = static_cast<float>(i % 7) - 3.0f;
  }
  // Both the cubin and the PTX itself (JIT-compiled at load) run.
  for (const Artifact& binary : {cubin, Artifact::text("ptx", testing::kSaxpyPtx, {"saxpy"})}) {
    CAPTURE(binary.format);
    auto module = device->load(binary);
    auto xb = device->wrap_host(x.data(), n * sizeof(float));
    auto yb = device->allocate(n * sizeof(float));
    Stream& stream = device->stream();
    stream.write(*yb, 0, y.data(), n * sizeof(float));
    Grid grid;
    grid.groups[0] = (n + block - 1) / block;
    grid.items[0] = block;
    KernelArg args[] = {KernelArg::of(*xb), KernelArg::of(*yb), KernelArg::of_f32(2.5f), KernelArg::of_i64(n)};
    stream.launch(module->kernel("saxpy"), grid, args);
    stream.synchronize();
    std::vector<float> out(n);
    stream.read(*yb, 0, out.data(), n * sizeof(float));
    int64_t wrong = 0;
    for (int64_t i = 0; i < n; ++i) wrong += out[i] != std::fma(2.5f, x[i], y[i]);
    CHECK(wrong == 0);
    CHECK(contains(user_error_of([&] { module->kernel("nope"); }), "saxpy"));
  }
}

TEST_CASE("cuda device: compile and load errors are UserErrors with the JIT log") {
  if (!cuda_present()) return;
  auto device = open_device("cuda:0");
  std::string message = user_error_of([&] { device->compile(Artifact::text("ptx", testing::kBadPtx, {"bad"})); });
  CAPTURE(message);
  CHECK(contains(message, "bad"));
  CHECK(contains(message, "%f9"));
  CHECK(contains(user_error_of([&] { device->compile(Artifact::text("cl", "kernel void k() {}", {"k"})); }), "'cl'"));
  CHECK(contains(user_error_of([&] { device->load(Artifact::text("ptx", testing::kSaxpyPtx, {"missing"})); }),
                 "missing"));
}
