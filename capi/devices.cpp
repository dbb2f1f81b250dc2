// moat_device_count / moat_device_info: the devices of backends::enumerate_devices(),
// listed once per process.
#include <mutex>
#include <vector>

#include "backends/registry.h"
#include "capi/boundary.h"

namespace moat::capi {

namespace {

// The enumeration, made on first use; its strings live as long as the process.
const std::vector<backends::DeviceInfo>& devices() {
  static std::vector<backends::DeviceInfo> list;
  static std::once_flag once;
  std::call_once(once, [] { list = backends::enumerate_devices().devices; });  // a throw lets the next call retry
  return list;
}

}  // namespace

}  // namespace moat::capi

extern "C" {

moat_status moat_device_count(size_t* count) {
  return moat::capi::guarded(__func__, MOAT_CAPI_BODY {
    MOAT_CAPI_NOT_NULL(count);
    *count = moat::capi::devices().size();
    return MOAT_OK;
  });
}

moat_status moat_device_info(size_t index, const char** id, const char** name) {
  return moat::capi::guarded(__func__, MOAT_CAPI_BODY {
    const auto& list = moat::capi::devices();
    MOAT_CAPI_REQUIRE(index < list.size(), "device index ", index, " is not below the device count ", list.size());
    if (id) *id = list[index].id.c_str();
    if (name) *name = list[index].name.c_str();
    return MOAT_OK;
  });
}

}  // extern "C"
