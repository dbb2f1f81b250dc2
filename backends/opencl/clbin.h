// The "clbin" artifact: a device program binary (clGetProgramInfo CL_PROGRAM_BINARIES)
// with the build options it was built with, so load() rebuilds it the same way and
// the kernel cache can store it as one blob. Host-independent layout, little-endian:
//
//   "MOATCLB1"          8 bytes, magic + layout version
//   options_bytes       u32
//   options             options_bytes bytes of text, e.g. "-cl-std=CL1.2"
//   binary              the rest: the driver's own format (PoCL: "poclbin", NVIDIA: PTX)
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace moat::backends::opencl {

struct ClBinary {
  std::string options;          // build options, as clBuildProgram takes them
  std::vector<uint8_t> binary;  // the device binary, as clCreateProgramWithBinary takes it
};

std::vector<uint8_t> encode_clbin(const ClBinary& program);

// UserError saying to recompile when `bytes` is not a clbin this version writes
// (wrong magic, truncated, empty binary).
ClBinary decode_clbin(std::span<const uint8_t> bytes);

}  // namespace moat::backends::opencl
