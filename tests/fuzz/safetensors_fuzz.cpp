// libFuzzer target: the safetensors header parser over arbitrary bytes.
// Any input must parse or throw moat::UserError; what parses must lie inside the input.
#include <cstddef>
#include <cstdint>
#include <span>

#include "frontend/safetensors.h"
#include "support/error.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    auto file = moat::safetensors::File::parse(std::span<const uint8_t>(data, size), "fuzz.safetensors");
    volatile uint8_t sink = 0;
    for (const auto& t : file.tensors()) {
      // Touch the first and last byte of every tensor: ASan reports any read outside the input.
      if (!t.data.empty()) sink = sink + t.data.front() + t.data.back();
      if (t.nbytes() != static_cast<uint64_t>(t.elements()) * moat::safetensors::dtype_bytes(t.dtype)) __builtin_trap();
    }
    for (const auto& t : file.tensors())
      if (file.find(t.name) == nullptr) __builtin_trap();
  } catch (const moat::UserError&) {
  }
  return 0;
}
