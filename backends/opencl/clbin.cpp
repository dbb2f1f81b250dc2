#include "backends/opencl/clbin.h"

#include <cstring>

#include "support/error.h"

namespace moat::backends::opencl {

namespace {

constexpr char kMagic[8] = {'M', 'O', 'A', 'T', 'C', 'L', 'B', '1'};
constexpr size_t kHeaderBytes = sizeof kMagic + 4;

}  // namespace

std::vector<uint8_t> encode_clbin(const ClBinary& program) {
  MOAT_INTERNAL_CHECK(program.options.size() <= UINT32_MAX, "clbin options too long");
  std::vector<uint8_t> out(kMagic, kMagic + sizeof kMagic);
  auto length = static_cast<uint32_t>(program.options.size());
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<uint8_t>(length >> (8 * i)));
  out.insert(out.end(), program.options.begin(), program.options.end());
  out.insert(out.end(), program.binary.begin(), program.binary.end());
  return out;
}

ClBinary decode_clbin(std::span<const uint8_t> bytes) {
  const char* why = nullptr;
  uint64_t length = 0;
  if (bytes.size() < kHeaderBytes || std::memcmp(bytes.data(), kMagic, sizeof kMagic) != 0) {
    why = "it does not start with the clbin magic";
  } else {
    for (int i = 0; i < 4; ++i) length |= uint64_t{bytes[sizeof kMagic + i]} << (8 * i);
    if (length >= bytes.size() - kHeaderBytes) why = "it is truncated (no device binary after the options)";
  }
  if (why)
    user_error("not an OpenCL program binary of this moatless version (", why,
               "); compile the kernel source again (clear the kernel cache directory if it came from there)");
  ClBinary out;
  const uint8_t* options = bytes.data() + kHeaderBytes;
  out.options.assign(reinterpret_cast<const char*>(options), length);
  out.binary.assign(options + length, bytes.data() + bytes.size());
  return out;
}

}  // namespace moat::backends::opencl
