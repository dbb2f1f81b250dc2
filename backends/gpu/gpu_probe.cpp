#include "backends/gpu/gpu_probe.h"

#include "support/error.h"

namespace moat::backends::gpu {

std::string device_count_text(int count) { return cat(count, count == 1 ? " device" : " devices"); }

void not_available(std::string_view backend, std::string_view label, int ordinal, std::string_view why) {
  user_error("cannot open ", backend, ":", ordinal, ": ", label, " is not available: ", why,
             "; `moat devices` lists the devices and the state of each backend");
}

void check_ordinal(std::string_view backend, std::string_view label, int ordinal, int count) {
  if (ordinal < 0 || ordinal >= count)
    user_error("no device '", backend, ":", ordinal, "' (this machine has ", count, " ", label, " device",
               count == 1 ? "" : "s", "); `moat devices` lists them");
}

}  // namespace moat::backends::gpu
