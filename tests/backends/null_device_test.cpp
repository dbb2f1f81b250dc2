// The null backend (backends/null): listed and opened only when enabled
// (MOAT_NULL_BACKEND=1, read by the registration table at each enumeration), a device
// whose buffers round-trip bytes and whose compile / load are UserErrors saying they
// are not implemented; `moat devices` shows it only when enabled.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

#include "backends/device.h"
#include "support/error.h"
#include "tests/cli/cli_runner.h"
#include "tests/user_error_of.h"

using namespace moat;
using namespace moat::backends;
using moat::testing::user_error_of;

namespace {

bool lists(const DeviceReport& report, const std::string& id) {
  for (const DeviceInfo& d : report.devices)
    if (d.id == id) return true;
  return false;
}

bool has_backend_line(const DeviceReport& report, const std::string& backend) {
  for (const BackendStatus& s : report.backends)
    if (s.backend == backend) return true;
  return false;
}

// Sets MOAT_NULL_BACKEND for the scope.
struct NullBackendSwitch {
  explicit NullBackendSwitch(bool on) {
    if (on) setenv("MOAT_NULL_BACKEND", "1", 1);
    else unsetenv("MOAT_NULL_BACKEND");
  }
  ~NullBackendSwitch() { unsetenv("MOAT_NULL_BACKEND"); }
};

}  // namespace

TEST_CASE("null backend: hidden and not openable unless enabled") {
  NullBackendSwitch off(false);
  DeviceReport report = enumerate_devices();
  CHECK_FALSE(lists(report, "null:0"));
  CHECK_FALSE(has_backend_line(report, "null"));
  std::string message = user_error_of([] { open_device("null:0"); });
  CHECK(testing::contains(message, "no device 'null:0'"));
  for (const char* value : {"0", ""}) {
    setenv("MOAT_NULL_BACKEND", value, 1);
    CHECK_FALSE(lists(enumerate_devices(), "null:0"));
  }
}

TEST_CASE("null backend: enabled, it is listed and opens - buffers round-trip - kernels are not implemented") {
  NullBackendSwitch on(true);
  DeviceReport report = enumerate_devices();
  CHECK(lists(report, "null:0"));
  CHECK(has_backend_line(report, "null"));
  CHECK(lists(report, "cpu"));  // the other backends are still there
  CHECK(testing::contains(user_error_of([] { open_device("null:1"); }), "null:0"));  // lists what there is

  auto device = open_device("null:0");
  CHECK(device->properties().info.backend == "null");
  std::vector<std::string> f32{"f32"};
  CHECK_FALSE(device->supports_op("add", f32));

  std::vector<uint8_t> in(10000), out(10000);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<uint8_t>(i * 7);
  auto buffer = device->allocate(in.size());
  CHECK(device->memory().live() == in.size());
  device->stream().write(*buffer, 0, in.data(), in.size());
  auto view = device->view(*buffer, kViewAlignment, 100);
  device->stream().read(*view, 0, out.data(), 100);
  CHECK(std::equal(out.begin(), out.begin() + 100, in.begin() + kViewAlignment));
  auto copy = device->wrap_host(in.data(), in.size());
  device->stream().read(*copy, 0, out.data(), out.size());
  CHECK(out == in);

  std::string message = user_error_of([&] { device->compile(Artifact::text("cl", "kernel void k() {}", {"k"})); });
  CHECK(testing::contains(message, "null:0"));
  CHECK(testing::contains(message, "not implemented"));
  CHECK(testing::contains(user_error_of([&] { device->load(Artifact::text("o", "", {"k"})); }), "null:0"));
}

TEST_CASE("moat devices lists the null backend only when enabled") {
  {
    NullBackendSwitch off(false);
    testing::CliResult r = testing::run_moat({"devices"});
    CHECK(r.exit_code == 0);
    CHECK_FALSE(testing::contains(r.out, "null"));
  }
  NullBackendSwitch on(true);
  testing::CliResult r = testing::run_moat({"devices"});
  CHECK(r.exit_code == 0);
  CHECK(testing::contains(r.out, "null:0"));
}
