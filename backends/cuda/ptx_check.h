// Offline PTX validation with NVIDIA's assembler (ptxas from the CUDA toolkit), for
// tests and the toolchain on machines without a GPU: every PTX kernel the JIT emits is
// assembled for sm_80 and sm_90 here. Not used at run time (the driver JITs there).
#pragma once

#include <string>
#include <string_view>

namespace moat::backends::cuda {

// Whether ptxas is on $PATH or in /usr/local/cuda/bin.
bool ptxas_available();

// The ptxas found ("" when none) and its version line ("Cuda compilation tools, release
// 13.0, V13.0.88"); for skip messages and cache keys.
std::string ptxas_path();
std::string ptxas_version();

// Assembles `ptx` for `arch` ("sm_80", "sm_90a") with `ptxas -arch=<arch> -o /dev/null`:
// "" when it assembles, else ptxas' messages (never empty on failure). UserError when
// ptxas is absent or `arch` is not an sm_XY name.
std::string check_ptx(std::string_view ptx, std::string_view arch);

}  // namespace moat::backends::cuda
