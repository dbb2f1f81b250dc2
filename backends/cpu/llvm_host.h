// The host as an LLVM target: triple, CPU name and ISA features, as LLVM names them.
// Kernels are compiled for exactly this host (never for a generic CPU), so an
// AVX2-only machine gets AVX2 code and an AVX-512 machine AVX-512 code.
#pragma once

#include <string>

namespace moat::backends::cpu {

struct HostTarget {
  std::string triple;    // "x86_64-pc-linux-gnu"
  std::string cpu;       // "sapphirerapids", "znver3", "haswell"
  std::string features;  // "+avx,+avx2,-avx512f,...", sorted, as "target-features" takes it
  std::string llvm_version;  // "14.0.6"
};

// Detected once per process; also initialises LLVM's native target, asm printer and parser.
const HostTarget& host_target();

}  // namespace moat::backends::cpu
