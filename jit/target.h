// The targets the JIT prints kernels for, in one table: a target is one row (its
// artifact format, the backend that loads it, its printer, the capabilities of the
// architectures it knows, its default schedule parameters), and everything that picks a
// target — the runtime's emitter (runtime/emit.h), `moat emit`, the schedule choice, the
// validators' tests — iterates this table instead of comparing names.
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "jit/capabilities.h"
#include "jit/kir.h"
#include "jit/legalize.h"

namespace moat::jit {

// The style and sizes of the lowering's schedules on a target (jit/schedule.h takes
// them with a device's capabilities).
struct ScheduleDefaults {
  bool gpu = false;             // work-items are hardware threads (else: one per group, vectors in it)
  int work_group_size = 1;      // GPU: preferred work-items per group, capped by the device's maximum
  int min_vector_lanes = 1;     // CPU: f32 lanes of inner loops, from the device's vector width,
  int max_vector_lanes = 1;     //      clamped to [min, max]
};

struct Target {
  std::string_view name;        // "llvm-cpu", "ptx", "hip", "opencl-c", "spir", "spirv"
  std::string_view alias;       // another name `moat emit --target` accepts ("llvm", "opencl"); may be empty
  std::string_view format;      // the Artifact format (backends/device.h): "ll", "ptx", "hip", "cl", "bc-spir", "spv"
  std::string_view backend;     // the backend whose devices load it: "cpu", "cuda", "hip", "opencl"
  std::string_view extension;   // file name extension of a dumped kernel, without the dot
  std::string_view default_arch;                   // the architecture an offline emit assumes ("" for generic)
  std::span<const Capabilities> architectures;    // the known ones, first the default
  ScheduleDefaults schedule;
  // What the target converts and computes natively and exactly (f16 conversions, math
  // functions); legalize_numerics writes out everything else before printing.
  NumericsOptions numerics;
  // 32: index arithmetic narrowed where ranges allow (narrow_index_arithmetic: GPUs,
  // whose integer units are 32-bit); 64: left in i64 (the CPU's LLVM does its own).
  int index_bits = 64;
  // The printer: the kernel in `format` for a device with `caps` (text, or the bytes of
  // a binary format). It legalises the rest of what it needs itself (scalarize).
  std::string (*printer)(const Kernel& kernel, const Capabilities& caps);

  // The kernel in `format`: numerics legalised as `numerics` declares, index
  // arithmetic narrowed to `index_bits`, then printed.
  std::string print(const Kernel& kernel, const Capabilities& caps) const {
    Kernel legal = legalize_numerics(kernel, numerics);
    if (index_bits == 32) legal = narrow_index_arithmetic(legal);
    return printer(legal, caps);
  }
};

// Every target; the first target of a backend is that backend's default.
std::span<const Target> targets();

// The target named `name` (or its alias): nullptr / UserError listing the names otherwise.
const Target* find_target(std::string_view name);
const Target& target_named(std::string_view name);

// The target that backend `backend`'s devices load in `format`, or the backend's
// default target when `format` is empty or none of its targets has it; nullptr when no
// target is loaded by that backend.
const Target* target_for_backend(std::string_view backend, std::string_view format = {});

// The capabilities of architecture `arch` of `target` (its default when `arch` is
// empty); UserError listing the known architectures otherwise.
const Capabilities& capabilities_of(const Target& target, std::string_view arch = {});
// The record of `arch` when the target knows it, else nullptr.
const Capabilities* find_architecture(const Target& target, std::string_view arch);

// "llvm-cpu (llvm), ptx, ..." for messages and --help.
std::string target_names();

}  // namespace moat::jit
