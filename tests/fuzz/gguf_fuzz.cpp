// libFuzzer target: the GGUF reader on arbitrary bytes. A parse or a UserError are the
// only acceptable outcomes.
#include <cstddef>
#include <cstdint>

#include "frontend/gguf.h"
#include "support/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    moat::gguf::File file = moat::gguf::File::parse({data, size}, "fuzz.gguf");
    volatile uint8_t sink = 0;
    for (const auto& t : file.tensors())  // touch each tensor's first and last byte (ASan checks the bounds)
      if (!t.data.empty()) sink = static_cast<uint8_t>(sink + t.data.front() + t.data.back());
    (void)sink;
  } catch (const moat::UserError&) {
  }
  return 0;
}
