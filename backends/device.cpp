#include "backends/device.h"

#include <charconv>

#include "backends/backend_table.h"
#include "support/error.h"

namespace moat::backends {

Artifact Artifact::text(std::string format, std::string_view text, std::vector<std::string> kernels) {
  Artifact a;
  a.format = std::move(format);
  a.bytes.assign(text.begin(), text.end());
  a.kernels = std::move(kernels);
  return a;
}

void MemoryLedger::add(uint64_t bytes) {
  const uint64_t now = live_.fetch_add(bytes) + bytes;
  uint64_t peak = peak_.load();
  while (now > peak && !peak_.compare_exchange_weak(peak, now)) {
  }
}

void MemoryLedger::remove(uint64_t bytes) { live_.fetch_sub(bytes); }

Buffer::~Buffer() {
  if (ledger_) ledger_->remove(counted_);
}

std::unique_ptr<Buffer> Device::counted(std::unique_ptr<Buffer> buffer) {
  if (buffer && !buffer->ledger_) {
    buffer->counted_ = buffer->size();
    buffer->ledger_ = memory_;
    memory_->add(buffer->counted_);
  }
  return buffer;
}

namespace {

// N of "<prefix>:N" ("cuda:0"); -1 when `id` is not of that form.
int ordinal_of(std::string_view id, std::string_view prefix) {
  if (id.size() <= prefix.size() || id.substr(0, prefix.size()) != prefix || id[prefix.size()] != ':') return -1;
  std::string_view digits = id.substr(prefix.size() + 1);
  int n = 0;
  auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), n);
  return error == std::errc() && end == digits.data() + digits.size() && n >= 0 ? n : -1;
}

}  // namespace

std::unique_ptr<Device> open_device(std::string_view id, const CpuOptions& cpu_options) {
  for (const BackendEntry& backend : backend_table()) {
    if (backend.enabled && !backend.enabled()) continue;
    int n = backend.numbered ? ordinal_of(id, backend.name) : id == backend.name ? 0 : -1;
    if (n < 0) continue;
    if (std::unique_ptr<Device> device = backend.open(n, cpu_options)) return device;
    break;
  }
  DeviceReport report = enumerate_devices();
  std::vector<std::string> ids;
  for (const DeviceInfo& d : report.devices) ids.push_back(d.id);
  user_error("no device '", id, "' to run on (available: ", join(ids, ", "),
             "); `moat devices` lists the devices and the state of each backend");
}

}  // namespace moat::backends
