// The target table and the capabilities of the architectures each target knows.
#include "jit/target.h"

#include <algorithm>
#include <cstdlib>

#include "jit/emit_c.h"
#include "jit/emit_llvm.h"
#include "jit/emit_ptx.h"
#include "jit/emit_spirv.h"
#include "support/error.h"

namespace moat::jit {

namespace {

using ir::DType;

constexpr int64_t KiB = 1024;

// CPU (llvm-cpu): a work-group is one thread's task; "local memory" is a stack array of
// the kernel (the CPU backend's limits, backends/cpu/cpu_device.cpp). int8_dot here is
// AVX-512 VNNI with AVX512VL (vpdpbusd on 256 and 512 bits). A host's own record
// (runtime/device_target.h) takes its vector width and VNNI from the host.
std::span<const Capabilities> cpu_archs() {
  static const Capabilities archs[] = {
      {.arch = "x86_64", .vector_load_bits = 512, .vector_bits = 512, .max_work_group_size = 1024, .local_memory_bytes = 1024 * KiB},
  };
  return archs;
}

// NVIDIA (ptx): a warp of 32; dp4a; mma.sync shapes (Ampere on), wgmma (Hopper);
// shared memory without the opt-in, 48 KiB per block.
std::vector<MatrixShape> mma_sync() {
  return {{16, 8, 16, DType::f16, DType::f32}, {16, 8, 16, DType::bf16, DType::f32}, {16, 8, 32, DType::i8, DType::i32}};
}
std::vector<MatrixShape> with(std::vector<MatrixShape> shapes, std::initializer_list<MatrixShape> more) {
  shapes.insert(shapes.end(), more);
  return shapes;
}
Capabilities nvidia(const char* arch, std::vector<MatrixShape> shapes) {
  return {.arch = arch, .sub_group_size = 32, .sub_group_shuffle = true, .int8_dot = true, .matrix_shapes = std::move(shapes),
          .vector_load_bits = 128, .vector_bits = 32, .f16_arithmetic = true, .bf16_arithmetic = true,
          .max_work_group_size = 1024, .local_memory_bytes = 48 * KiB};
}
std::span<const Capabilities> nvidia_archs() {
  static const Capabilities archs[] = {
      nvidia("sm_80", mma_sync()),
      nvidia("sm_86", mma_sync()),
      nvidia("sm_89", with(mma_sync(), {{16, 8, 32, DType::f8_e4m3, DType::f32}})),
      nvidia("sm_90", with(mma_sync(), {{16, 8, 32, DType::f8_e4m3, DType::f32},  // and wgmma, per warp group:
                                        {64, 256, 16, DType::f16, DType::f32},
                                        {64, 256, 16, DType::bf16, DType::f32},
                                        {64, 256, 32, DType::i8, DType::i32},
                                        {64, 256, 32, DType::f8_e4m3, DType::f32}})),
  };
  return archs;
}

// AMD (hip): wavefronts of 64 (CDNA) or 32 (RDNA, hiprtc's default there); v_dot4 int8
// products; MFMA (CDNA) / WMMA (RDNA3); 64 KiB of LDS per work-group. f8 on gfx942 is
// the FNUZ encoding, not e4m3: not listed.
Capabilities amd(const char* arch, int wave, std::vector<MatrixShape> shapes) {
  return {.arch = arch, .sub_group_size = wave, .sub_group_shuffle = true, .int8_dot = true, .matrix_shapes = std::move(shapes),
          .vector_load_bits = 128, .vector_bits = 32, .f16_arithmetic = true, .bf16_arithmetic = false,
          .max_work_group_size = 1024, .local_memory_bytes = 64 * KiB};
}
std::span<const Capabilities> amd_archs() {
  static const Capabilities archs[] = {
      amd("gfx90a", 64, {{32, 32, 8, DType::f16, DType::f32}, {16, 16, 16, DType::f16, DType::f32},
                         {32, 32, 8, DType::bf16, DType::f32}, {16, 16, 16, DType::bf16, DType::f32},
                         {32, 32, 8, DType::i8, DType::i32}, {16, 16, 16, DType::i8, DType::i32}}),
      amd("gfx942", 64, {{32, 32, 8, DType::f16, DType::f32}, {16, 16, 16, DType::f16, DType::f32},
                         {32, 32, 8, DType::bf16, DType::f32}, {16, 16, 16, DType::bf16, DType::f32},
                         {32, 32, 16, DType::i8, DType::i32}, {16, 16, 32, DType::i8, DType::i32}}),
      amd("gfx1030", 32, {}),
      amd("gfx1100", 32, {{16, 16, 16, DType::f16, DType::f32}, {16, 16, 16, DType::bf16, DType::f32},
                          {16, 16, 16, DType::i8, DType::i32}}),
  };
  return archs;
}

// OpenCL (opencl-c, spir, spirv): what OpenCL 1.2 guarantees a full-profile device —
// no sub-groups, no half arithmetic, 32 KiB of local memory — and a work-group of 256.
std::span<const Capabilities> opencl_archs() {
  static const Capabilities archs[] = {
      {.arch = "", .vector_load_bits = 128, .vector_bits = 128, .max_work_group_size = 256, .local_memory_bytes = 32 * KiB},
  };
  return archs;
}

std::string bytes_of(const std::vector<uint8_t>& bytes) { return std::string(bytes.begin(), bytes.end()); }

std::string print_llvm(const Kernel& k, const Capabilities& caps) {
  CpuFeatures cpu;
  cpu.avx512_vnni = caps.int8_dot;
  cpu.pshufb = caps.byte_shuffle;
  return emit_llvm(k, cpu);
}
// "sm_90" -> PTX for sm_90 at the lowest PTX version that has it.
std::string print_ptx(const Kernel& k, const Capabilities& caps) {
  int sm = 0;
  if (caps.arch.rfind("sm_", 0) == 0) sm = std::atoi(caps.arch.c_str() + 3);
  if (sm <= 0) user_error("ptx: '", caps.arch, "' is not an sm_XY architecture (e.g. sm_90)");
  return emit_ptx(k, ptx_target_for(sm));
}
std::string print_hip(const Kernel& k, const Capabilities&) { return emit_hip(k); }
std::string print_opencl(const Kernel& k, const Capabilities&) { return emit_opencl(k); }
std::string print_spir(const Kernel& k, const Capabilities&) { return bytes_of(emit_spir_bitcode(k)); }
std::string print_spirv(const Kernel& k, const Capabilities&) { return bytes_of(emit_spirv(k)); }

constexpr ScheduleDefaults kCpuSchedule{.gpu = false, .work_group_size = 1, .min_vector_lanes = 4, .max_vector_lanes = 16};
constexpr ScheduleDefaults kGpuSchedule{.gpu = true, .work_group_size = 256, .min_vector_lanes = 1, .max_vector_lanes = 1};

// Function-local statics: initialised on first use, whatever the order of static
// initialisation (`moat emit`'s help text reads the names at start-up).
std::span<const Target> table() {
  static const Target targets[] = {
      {.name = "llvm-cpu", .alias = "llvm", .format = "ll", .backend = "cpu", .extension = "ll",
       .default_arch = "x86_64", .architectures = cpu_archs(), .schedule = kCpuSchedule,
       .numerics = {.native_f16 = true, .native_math = true}, .printer = print_llvm},
      {.name = "ptx", .alias = "", .format = "ptx", .backend = "cuda", .extension = "ptx",
       .default_arch = "sm_80", .architectures = nvidia_archs(), .schedule = kGpuSchedule,
       .numerics = {.native_f16 = true, .native_math = false, .native_dot4_words = true}, .index_bits = 32, .printer = print_ptx},
      {.name = "hip", .alias = "", .format = "hip", .backend = "hip", .extension = "hip",
       .default_arch = "gfx90a", .architectures = amd_archs(), .schedule = kGpuSchedule,
       .numerics = {.native_f16 = false, .native_math = true}, .index_bits = 32, .printer = print_hip},
      {.name = "opencl-c", .alias = "opencl", .format = "cl", .backend = "opencl", .extension = "cl",
       .default_arch = "", .architectures = opencl_archs(), .schedule = kGpuSchedule,
       .numerics = {.native_f16 = false, .native_math = true}, .index_bits = 32, .printer = print_opencl},
      {.name = "spir", .alias = "", .format = "bc-spir", .backend = "opencl", .extension = "bc",
       .default_arch = "", .architectures = opencl_archs(), .schedule = kGpuSchedule,
       .numerics = {.native_f16 = true, .native_math = true}, .index_bits = 32, .printer = print_spir},
      {.name = "spirv", .alias = "", .format = "spv", .backend = "opencl", .extension = "spv",
       .default_arch = "", .architectures = opencl_archs(), .schedule = kGpuSchedule,
       .numerics = {.native_f16 = true, .native_math = true}, .index_bits = 32, .printer = print_spirv},
  };
  return targets;
}

}  // namespace

std::span<const Target> targets() { return table(); }

std::string target_names() {
  std::string out;
  for (const Target& t : table()) {
    if (!out.empty()) out += ", ";
    out += t.name;
    if (!t.alias.empty()) out += cat(" (", t.alias, ")");
  }
  return out;
}

const Target* find_target(std::string_view name) {
  for (const Target& t : table())
    if (t.name == name || (!t.alias.empty() && t.alias == name)) return &t;
  return nullptr;
}

const Target& target_named(std::string_view name) {
  if (const Target* t = find_target(name)) return *t;
  user_error("target '", name, "' is not one of ", target_names());
}

const Target* target_for_backend(std::string_view backend, std::string_view format) {
  const Target* first = nullptr;
  for (const Target& t : table()) {
    if (t.backend != backend) continue;
    if (!first) first = &t;
    if (!format.empty() && t.format == format) return &t;
  }
  return first;
}

const Capabilities* find_architecture(const Target& target, std::string_view arch) {
  for (const Capabilities& c : target.architectures)
    if (c.arch == arch) return &c;
  return nullptr;
}

const Capabilities& capabilities_of(const Target& target, std::string_view arch) {
  if (arch.empty()) arch = target.default_arch;
  if (const Capabilities* c = find_architecture(target, arch)) return *c;
  std::string known;
  for (const Capabilities& c : target.architectures) known += cat(known.empty() ? "" : ", ", c.arch.empty() ? "generic" : c.arch);
  user_error("target ", target.name, " has no architecture '", arch, "' (known: ", known, ")");
}

}  // namespace moat::jit
