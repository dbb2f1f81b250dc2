// Every kernel of the conformance cases, lowered with a GPU schedule (work-items) and
// a sample of those lowered with a CPU schedule (vectors, scalarized), emitted for every
// target and checked by that target's own tools (SPIR-V and LLVM IR: every kernel of
// both schedules): SPIR-V by SPIRV-Tools' validator (OpenCL 1.2 environment), OpenCL C by
// building it on the first OpenCL device, HIP C++ by hiprtc for gfx90a and gfx1030,
// PTX by ptxas for sm_80 and sm_90, LLVM IR by LLVM's verifier. Each check skips,
// saying why, only where its tool or device is absent.
#include <iostream>
#include <sstream>

#include "backends/cpu/llvm_verify.h"
#include "backends/cuda/ptx_check.h"
#include "backends/hip/hip_compile.h"
#include "jit/emit_c.h"
#include "jit/emit_ptx.h"
#include "jit/emit_spirv.h"
#include "frontend/models/deepseek_weights.h"
#include "runtime/session.h"
#include "support/error.h"
#include "tests/jit/conformance_cases.h"

#ifdef MOAT_HAVE_SPIRV_TOOLS
#include <spirv-tools/libspirv.h>
#endif

using moat::testing::BackendUnderTest;
namespace cases = moat::testing::cases;
namespace jit = moat::jit;

namespace {

// The distinct kernels of every case under `schedule`.
std::vector<jit::Kernel> collect(const jit::Schedule& schedule) {
  BackendUnderTest c(schedule);
  for (auto fn : {cases::unary, cases::binary, cases::select, cases::cast, cases::reduce, cases::matmul_float,
                  cases::matmul_quantised, cases::matmul_fp8, cases::gather, cases::topk, cases::views, cases::sources,
                  cases::symbolic, cases::composites})
    fn(c);
  return std::move(c.collected);
}

const std::vector<jit::Kernel>& cpu_kernels() {
  static const std::vector<jit::Kernel> k = collect(jit::Schedule{});
  return k;
}

const std::vector<jit::Kernel>& gpu_kernels() {
  static const std::vector<jit::Kernel> k = [] {
    jit::Schedule s;
    s.gpu = true;
    s.work_group_size = 128;
    s.vector_lanes = 1;
    return collect(s);
  }();
  return k;
}

// GPU targets run GPU-schedule kernels; CPU-schedule kernels (vectors) reach them only
// through the scalarize legalisation, which a sample of them exercises.
const std::vector<jit::Kernel>& gpu_target_kernels() {
  static const std::vector<jit::Kernel> k = [] {
    std::vector<jit::Kernel> out = gpu_kernels();
    for (size_t i = 0; i < cpu_kernels().size(); i += 8) out.push_back(cpu_kernels()[i]);
    return out;
  }();
  return k;
}

}  // namespace

TEST_CASE("the cases lower to hundreds of distinct kernels under both schedules") {
  CHECK(cpu_kernels().size() > 200);
  CHECK(gpu_kernels().size() > 200);
  MESSAGE(cpu_kernels().size() << " CPU-schedule kernels, " << gpu_kernels().size() << " GPU-schedule kernels");
}

TEST_CASE("SPIR-V of every kernel passes SPIRV-Tools' validator for OpenCL 1.2") {
#ifdef MOAT_HAVE_SPIRV_TOOLS
  spv_context context = spvContextCreate(SPV_ENV_OPENCL_1_2);
  int validated = 0;
  for (const auto* set : {&cpu_kernels(), &gpu_kernels()}) {
    for (const jit::Kernel& k : *set) {
      std::vector<uint8_t> spv = jit::emit_spirv(k);
      REQUIRE(spv.size() % 4 == 0);
      spv_const_binary_t binary{reinterpret_cast<const uint32_t*>(spv.data()), spv.size() / 4};
      spv_diagnostic diagnostic = nullptr;
      spv_result_t result = spvValidate(context, &binary, &diagnostic);
      CHECK_MESSAGE(result == SPV_SUCCESS, k.name, ": ", diagnostic ? diagnostic->error : "invalid");
      spvDiagnosticDestroy(diagnostic);
      ++validated;
    }
  }
  spvContextDestroy(context);
  MESSAGE(validated << " SPIR-V modules validated");
#else
  MESSAGE("skipped: SPIRV-Tools was not found at build time (Debian: spirv-tools)");
#endif
}

TEST_CASE("OpenCL C of every kernel builds on the first OpenCL device") {
  std::unique_ptr<moat::backends::Device> device;
  try {
    device = moat::backends::open_device("opencl:0");
  } catch (const moat::UserError& e) {
    MESSAGE("skipped: " << e.what());
    return;
  }
  for (const auto* set : {&gpu_target_kernels()}) {
    // one program per 64 kernels: fewer driver builds, errors still findable
    for (size_t start = 0; start < set->size(); start += 64) {
      std::span<const jit::Kernel> chunk(set->data() + start, std::min<size_t>(64, set->size() - start));
      std::vector<std::string> names;
      for (const jit::Kernel& k : chunk) names.push_back(k.name);
      moat::backends::Artifact source = moat::backends::Artifact::text("cl", jit::emit_opencl(chunk), names);
      CHECK_NOTHROW(device->compile(source));
    }
  }
}

TEST_CASE("LLVM IR of every CPU-schedule kernel passes LLVM's verifier") {
  for (const jit::Kernel& k : cpu_kernels()) CHECK_MESSAGE(moat::backends::cpu::verify_llvm_ir(jit::emit_llvm(k)) == "", k.name);
}

TEST_CASE("HIP C++ of every kernel compiles with hiprtc for gfx90a and gfx1030") {
  if (!moat::backends::hip::hip_compiler_available()) {
    MESSAGE("skipped: " << moat::backends::hip::hip_compiler_unavailable_reason());
    return;
  }
  int sources = 0;
  for (const auto* set : {&gpu_target_kernels()}) {
    // one translation unit per 256 kernels: hiprtc's start-up dominates small units
    for (size_t start = 0; start < set->size(); start += 256) {
      std::span<const jit::Kernel> chunk(set->data() + start, std::min<size_t>(256, set->size() - start));
      const std::string source = jit::emit_hip(chunk);
      for (const char* arch : {"gfx90a", "gfx1030"}) {
        CHECK_MESSAGE(moat::backends::hip::check_hip(source, arch) == "", arch, " kernels ", start, "..");
        ++sources;
      }
    }
  }
  MESSAGE(sources << " HIP translation units compiled");
}

// Kernels' PTX modules joined into one (entries and labels are per kernel; the header
// is kept once), so one ptxas run checks many kernels.
std::string joined_ptx(std::span<const jit::Kernel> kernels, int sm) {
  std::string out;
  bool first = true;
  for (const jit::Kernel& k : kernels) {
    std::istringstream lines(jit::emit_ptx(k, jit::ptx_target_for(sm)));
    std::string line;
    while (std::getline(lines, line)) {
      const bool header = line.rfind(".version", 0) == 0 || line.rfind(".target", 0) == 0 || line.rfind(".address_size", 0) == 0;
      if (header && !first) continue;
      out += line;
      out += '\n';
    }
    first = false;
  }
  return out;
}

TEST_CASE("PTX of every kernel assembles with ptxas for sm_80 and sm_90") {
  if (!moat::backends::cuda::ptxas_available()) {
    MESSAGE("skipped: ptxas not found (install the CUDA toolkit to check PTX)");
    return;
  }
  int modules = 0;
  for (size_t start = 0; start < gpu_target_kernels().size(); start += 128) {
    std::span<const jit::Kernel> chunk(gpu_target_kernels().data() + start,
                                       std::min<size_t>(128, gpu_target_kernels().size() - start));
    for (int sm : {80, 90}) {
      CHECK_MESSAGE(moat::backends::cuda::check_ptx(joined_ptx(chunk, sm), "sm_" + std::to_string(sm)) == "", "sm_", sm,
                    " kernels ", start, "..");
      ++modules;
    }
  }
  MESSAGE(modules << " PTX modules of up to 128 kernels assembled");
}

// Every kernel a session compiles for the golden DeepSeek models (a 48-token prompt, then
// decode), GPU schedule, for the targets no executing suite covers here: SPIR-V, PTX, HIP.
// (Their OpenCL C runs on PoCL in tests/models/goldens_test.cpp; their LLVM IR on the CPU.)
TEST_CASE("every kernel of the golden DeepSeek models: SPIR-V validates, PTX assembles, HIP compiles") {
  jit::Schedule schedule;
  schedule.gpu = true;
  schedule.work_group_size = 128;
  schedule.vector_lanes = 1;
  std::vector<jit::Kernel> kernels;
  std::set<std::string> names;
  const std::string dir = std::string(MOAT_SOURCE_DIR) + "/tests/data/goldens/";
  for (const char* model : {"v3", "v3/model-q8_0.gguf", "v3_fp8", "v2_lite/model-bf16.gguf", "v2"}) {
    const moat::models::DeepSeekModel m = moat::models::load_deepseek(dir + model);
    for (const moat::ir::Graph& g : moat::runtime::session_graphs(m, 48, 64))
      for (jit::PlanKernel& pk : jit::lower(g, {}, schedule).kernels)
        if (names.insert(pk.kernel.name).second) kernels.push_back(std::move(pk.kernel));
  }
  MESSAGE(kernels.size() << " distinct kernels in the golden models");
#ifdef MOAT_HAVE_SPIRV_TOOLS
  spv_context context = spvContextCreate(SPV_ENV_OPENCL_1_2);
  for (const jit::Kernel& k : kernels) {
    std::vector<uint8_t> spv = jit::emit_spirv(k);
    spv_const_binary_t binary{reinterpret_cast<const uint32_t*>(spv.data()), spv.size() / 4};
    spv_diagnostic diagnostic = nullptr;
    CHECK_MESSAGE(spvValidate(context, &binary, &diagnostic) == SPV_SUCCESS, k.name, ": ", diagnostic ? diagnostic->error : "");
    spvDiagnosticDestroy(diagnostic);
  }
  spvContextDestroy(context);
#else
  MESSAGE("SPIR-V part skipped: SPIRV-Tools was not found at build time");
#endif
  if (moat::backends::cuda::ptxas_available()) {
    for (size_t start = 0; start < kernels.size(); start += 128) {
      std::span<const jit::Kernel> chunk(kernels.data() + start, std::min<size_t>(128, kernels.size() - start));
      for (int sm : {80, 90})
        CHECK_MESSAGE(moat::backends::cuda::check_ptx(joined_ptx(chunk, sm), "sm_" + std::to_string(sm)) == "", "sm_", sm);
    }
  } else {
    MESSAGE("PTX part skipped: ptxas not found");
  }
  if (moat::backends::hip::hip_compiler_available()) {
    for (size_t start = 0; start < kernels.size(); start += 256) {
      std::span<const jit::Kernel> chunk(kernels.data() + start, std::min<size_t>(256, kernels.size() - start));
      const std::string source = jit::emit_hip(chunk);
      for (const char* arch : {"gfx90a", "gfx1030"}) CHECK_MESSAGE(moat::backends::hip::check_hip(source, arch) == "", arch);
    }
  } else {
    MESSAGE("HIP part skipped: " << moat::backends::hip::hip_compiler_unavailable_reason());
  }
}
