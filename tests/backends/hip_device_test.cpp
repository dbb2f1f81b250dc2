// The HIP backend and the offline HIP check: hand-written HIP C++ compiled by hiprtc
// for gfx90a and gfx1030 (no GPU needed); with an AMD GPU, a saxpy compiled, loaded
// and launched. Without a GPU the backend is cleanly "not available" and opening a
// device is a UserError saying why; without hiprtc the compile tests skip, saying why.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "backends/device.h"
#include "backends/hip/hip_backend.h"
#include "backends/hip/hip_compile.h"
#include "support/error.h"
#include "tests/backends/gpu_kernels.h"
#include "tests/skip.h"
#include "tests/user_error_of.h"

using namespace moat;
using namespace moat::backends;
using moat::testing::user_error_of;

namespace {

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

BackendStatus hip_status(const DeviceReport& report) {
  for (const BackendStatus& s : report.backends)
    if (s.backend == "hip") return s;
  FAIL("no hip line in the backend report");
  return {};
}

bool hip_present() {
  BackendStatus status = hip_status(enumerate_devices());
  if (!status.available) testing::skip("no HIP device: " + status.detail);
  return status.available;
}

bool skip_without_hiprtc() {
  if (hip::hip_compiler_available()) return false;
  testing::skip(hip::hip_compiler_unavailable_reason());
  return true;
}

}  // namespace

TEST_CASE("hip backend: devices when present, a clean 'not available' when not") {
  DeviceReport report = enumerate_devices();
  BackendStatus status = hip_status(report);
  size_t devices = std::count_if(report.devices.begin(), report.devices.end(),
                                 [](const DeviceInfo& d) { return d.backend == "hip"; });
  if (!status.available) {
    MESSAGE("HIP: ", status.detail);
    CHECK(status.detail.rfind("not available: ", 0) == 0);
    CHECK(devices == 0);
    std::string message = user_error_of([] { open_device("hip:0"); });
    CHECK(contains(message, "hip:0"));
    CHECK(contains(message, "not available"));
    return;
  }
  CHECK(devices > 0);
  for (const DeviceInfo& d : report.devices) {
    if (d.backend != "hip") continue;
    CHECK(d.id.rfind("hip:", 0) == 0);
    CHECK(d.arch.rfind("gfx", 0) == 0);
    CHECK(d.memory_bytes > 0);
  }
}

TEST_CASE("open_device: hip ids that are not a device ordinal") {
  for (std::string id : {"hip:", "hip:one", "hip:-2"}) {
    CAPTURE(id);
    CHECK(contains(user_error_of([&] { open_device(id); }), id));
  }
}

TEST_CASE("hiprtc compiles the hand-written saxpy for gfx90a and gfx1030") {
  if (skip_without_hiprtc()) return;
  MESSAGE("compiler: ", hip::hip_compiler_version());
  for (std::string arch : {"gfx90a", "gfx1030"}) {
    CAPTURE(arch);
    CHECK(hip::check_hip(testing::kSaxpyHip, arch) == "");
    Artifact binary = hip::compile_hip(Artifact::text("hip", testing::kSaxpyHip, {"saxpy"}), arch);
    CHECK(binary.format == "hsaco");
    CHECK(binary.kernels == std::vector<std::string>{"saxpy"});
    REQUIRE(binary.bytes.size() > 4);
    CHECK(std::equal(binary.bytes.begin(), binary.bytes.begin() + 4, "\x7f" "ELF"));
  }
}

TEST_CASE("hiprtc errors come back as the compile log") {
  if (skip_without_hiprtc()) return;
  std::string log = hip::check_hip(testing::kBadHip, "gfx90a");
  CAPTURE(log);
  CHECK(contains(log, "undeclared"));
  CHECK(contains(log, "error"));
  std::string message =
      user_error_of([] { hip::compile_hip(Artifact::text("hip", testing::kBadHip, {"bad"}), "gfx1030"); });
  CHECK(contains(message, "bad"));
  CHECK(contains(message, "gfx1030"));
  CHECK(contains(message, "undeclared"));
  CHECK(contains(user_error_of([] { hip::compile_hip(Artifact::text("ptx", "", {}), "gfx90a"); }), "'ptx'"));
}

TEST_CASE("a target hiprtc cannot handle fails the compile, not the process") {
  if (skip_without_hiprtc()) return;
  // Debian's ROCm 5.2 hiprtc aborts for gfx11 / gfx94x: the child process dies, we do not.
  for (std::string arch : {"gfx1100", "gfx942"}) {
    CAPTURE(arch);
    std::string log = hip::check_hip(testing::kSaxpyHip, arch);
    MESSAGE(arch, ": ", log.empty() ? "compiles" : log);
    if (!log.empty()) CHECK(contains(log, arch));
  }
  CHECK(hip::check_hip(testing::kSaxpyHip, "gfx90a") == "");  // still usable afterwards
}

TEST_CASE("check_hip refuses a name that is not an AMD GPU architecture") {
  for (std::string arch : {"sm_90", "gfx", "gfx90a; rm", "--offload-arch=gfx90a", ""}) {
    CAPTURE(arch);
    CHECK_THROWS_AS(hip::check_hip(testing::kSaxpyHip, arch), UserError);
  }
}

TEST_CASE("hip device: a saxpy compiled for the device's architecture") {
  if (!hip_present()) return;
  auto device = open_device("hip:0");
  const DeviceProperties& p = device->properties();
  CHECK(p.info.id == "hip:0");
  CHECK((p.sub_group_size == 32 || p.sub_group_size == 64));
  CHECK(p.max_work_group_size >= 256);
  CHECK(contains(device->compile_fingerprint(), p.info.arch));

  auto module = device->load(device->compile(Artifact::text("hip", testing::kSaxpyHip, {"saxpy"})));
  const int64_t n = 100003;
  const int64_t block = 256;
  std::vector<float> x(n), y(n);
  for (int64_t i = 0; i < n; ++i) {
    x[i] = static_cast<float>(i % 1000) * 0.5f;
    y[i] = static_cast<float>(i % 7) - 3.0f;
  }
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
  for (int64_t i = 0; i < n; ++i) {
    float expected = 2.5f * x[i] + y[i];
    wrong += std::fabs(out[i] - expected) > 1e-6f * std::max(1.0f, std::fabs(expected));
  }
  CHECK(wrong == 0);
}
