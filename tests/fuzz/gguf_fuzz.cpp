// libFuzzer target: the GGUF reader on arbitrary bytes (seeds: tests/fuzz/corpus/gguf/).
// A parse or a moat::UserError are the only acceptable outcomes: anything else thrown
// escapes and crashes the fuzzer, as do ASan/UBSan reports.
#include <cstddef>
#include <cstdint>

#include "frontend/gguf.h"
#include "support/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    moat::gguf::File file = moat::gguf::File::parse({data, size}, "fuzz.gguf");
    volatile uint8_t sink = 0;
    for (const auto& t : file.tensors()) {  // touch each tensor's first and last byte (ASan checks the bounds)
      if (!t.data.empty()) sink = static_cast<uint8_t>(sink + t.data.front() + t.data.back());
      if (file.find_tensor(t.name) == nullptr) __builtin_trap();
      (void)t.shape();
    }
    for (const auto& kv : file.metadata())
      if (file.find(kv.key) != &kv.value) __builtin_trap();
    (void)sink;
    (void)file.architecture();                 // may throw UserError: not a string
    (void)file.find_u64("general.alignment");  // likewise
  } catch (const moat::UserError&) {
  }
  return 0;
}
