#include "runtime/emit.h"

#include <cstdlib>

#include "jit/emit_c.h"
#include "jit/emit_llvm.h"
#include "jit/emit_ptx.h"
#include "jit/emit_spirv.h"
#include "support/error.h"

namespace moat::runtime {

backends::Artifact emit_for(const backends::DeviceProperties& device, const jit::Kernel& kernel,
                            std::string_view opencl_format) {
  const std::string& backend = device.info.backend;
  if (backend == "cpu") {
    jit::CpuFeatures cpu;
    cpu.avx512_vnni = device.info.has_feature("avx512vnni") && device.info.has_feature("avx512vl");
    return backends::Artifact::text("ll", jit::emit_llvm(kernel, cpu), {kernel.name});
  }
  if (backend == "opencl") {
    if (opencl_format == "spv") return backends::Artifact{"spv", jit::emit_spirv(kernel), {kernel.name}};
    if (opencl_format == "bc-spir") return backends::Artifact{"bc-spir", jit::emit_spir_bitcode(kernel), {kernel.name}};
    return backends::Artifact::text("cl", jit::emit_opencl(kernel), {kernel.name});
  }
  if (backend == "hip") return backends::Artifact::text("hip", jit::emit_hip(kernel), {kernel.name});
  if (backend == "cuda") {
    // arch "sm_90" -> PTX for sm_90 at the lowest PTX version that has it
    const std::string& arch = device.info.arch;
    int sm = 0;
    if (arch.rfind("sm_", 0) == 0) sm = std::atoi(arch.c_str() + 3);
    return backends::Artifact::text("ptx", jit::emit_ptx(kernel, jit::ptx_target_for(sm)), {kernel.name});
  }
  user_error("device ", device.info.id, ": this build has no code generator for the ", backend,
             " backend yet; use --device cpu");
}

}  // namespace moat::runtime
