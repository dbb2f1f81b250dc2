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
  // "libmvec" when glibc's vector math library (libmvec.so.1, x86-64) is loaded into the
  // process: the loop vectoriser then calls its expf / logf / sinf ... of 4 and 8 lanes
  // (_ZGVbN4v_expf, _ZGVdN8v_expf) where a kernel applies them element by element, and
  // the JIT resolves them. "" without it: one libm call per element.
  std::string vector_math;
};

// Detected once per process; also initialises LLVM's native target, asm printer and parser,
// and loads libmvec where there is one.
const HostTarget& host_target();

}  // namespace moat::backends::cpu
