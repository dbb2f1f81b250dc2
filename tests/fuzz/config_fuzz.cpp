// libFuzzer target: the DeepSeek config.json reader over arbitrary text.
// Any input must parse or throw moat::UserError.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "frontend/hf_config.h"
#include "support/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    moat::hf::parse_deepseek_config(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz/config.json");
  } catch (const moat::UserError&) {
  }
  return 0;
}
