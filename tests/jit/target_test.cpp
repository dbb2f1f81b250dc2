// The target table (jit/target.h): one row per target, names and formats unique, the
// architectures' capabilities, lookups, and the default schedules it gives.
#include <doctest/doctest.h>

#include <set>

#include "ir/builder.h"
#include "jit/lower.h"
#include "jit/schedule.h"
#include "jit/target.h"
#include "support/error.h"

using namespace moat;
using namespace moat::jit;

TEST_CASE("targets: names and formats are unique, each default architecture is known") {
  std::set<std::string_view> names, formats;
  for (const Target& t : targets()) {
    CHECK_MESSAGE(names.insert(t.name).second, t.name);
    if (!t.alias.empty()) CHECK_MESSAGE(names.insert(t.alias).second, t.alias);
    CHECK_MESSAGE(formats.insert(t.format).second, t.format);
    CHECK(!t.backend.empty());
    CHECK(!t.extension.empty());
    CHECK(static_cast<bool>(t.printer));
    REQUIRE_MESSAGE(!t.architectures.empty(), t.name);
    CHECK_MESSAGE(find_architecture(t, t.default_arch) == &t.architectures[0], t.name, ": the default comes first");
    for (const Capabilities& c : t.architectures) {
      CHECK(c.max_work_group_size >= 1);
      CHECK(c.local_memory_bytes > 0);
      CHECK(c.sub_group_size >= 1);
    }
  }
  CHECK(names.size() >= 6);
}

TEST_CASE("targets: lookups by name, alias, backend and format - unknown names are user errors") {
  CHECK(target_named("llvm").name == "llvm-cpu");
  CHECK(target_named("opencl").name == "opencl-c");
  CHECK(target_named("ptx").format == "ptx");
  CHECK_THROWS_AS(target_named("vulkan"), UserError);
  try {
    target_named("vulkan");
  } catch (const UserError& e) {
    CHECK(std::string(e.what()).find("spirv") != std::string::npos);  // says what exists
  }
  REQUIRE(target_for_backend("opencl") != nullptr);
  CHECK(target_for_backend("opencl")->name == "opencl-c");  // the backend's default: its first row
  CHECK(target_for_backend("opencl", "spv")->name == "spirv");
  CHECK(target_for_backend("opencl", "bc-spir")->name == "spir");
  CHECK(target_for_backend("cuda", "cl")->name == "ptx");  // a format the backend lacks: its default
  CHECK(target_for_backend("metal") == nullptr);
}

TEST_CASE("targets: capabilities per architecture") {
  const Target& ptx = target_named("ptx");
  const Capabilities& sm90 = capabilities_of(ptx, "sm_90");
  CHECK(sm90.sub_group_size == 32);
  CHECK(sm90.sub_group_shuffle);
  CHECK(sm90.int8_dot);
  bool wgmma = false;
  for (const MatrixShape& m : sm90.matrix_shapes) wgmma |= m.m == 64 && m.input == ir::DType::f16;
  CHECK(wgmma);
  CHECK(capabilities_of(ptx).arch == "sm_80");
  CHECK_THROWS_AS(capabilities_of(ptx, "sm_70"), UserError);
  const Target& hip = target_named("hip");
  CHECK(capabilities_of(hip, "gfx90a").sub_group_size == 64);
  CHECK(capabilities_of(hip, "gfx1030").sub_group_size == 32);
  CHECK(capabilities_of(hip, "gfx1030").matrix_shapes.empty());
  CHECK(!capabilities_of(target_named("spirv")).sub_group_shuffle);
}

TEST_CASE("schedule_for: the target's style and sizes within the device's capabilities") {
  const Target& ptx = target_named("ptx");
  Schedule s = schedule_for(ptx, capabilities_of(ptx, "sm_80"));
  CHECK(s.gpu);
  CHECK(s.work_group_size == 256);
  CHECK(s.vector_lanes == 1);
  CHECK(s.sub_group_size == 32);
  CHECK(s.local_memory_bytes == 48 * 1024);
  CHECK(s.int8_dot);
  Capabilities small = capabilities_of(ptx, "sm_80");
  small.max_work_group_size = 64;
  small.sub_group_shuffle = false;
  s = schedule_for(ptx, small);
  CHECK(s.work_group_size == 64);  // capped by the device
  CHECK(s.sub_group_size == 1);    // no shuffles: no sub-group for the lowering

  const Target& cpu = target_named("llvm-cpu");
  Capabilities host = capabilities_of(cpu);
  CHECK(schedule_for(cpu, host).vector_lanes == 16);  // 512-bit vectors
  CHECK(!schedule_for(cpu, host).gpu);
  host.vector_bits = 256;
  CHECK(schedule_for(cpu, host).vector_lanes == 8);
  host.vector_bits = 64;
  CHECK(schedule_for(cpu, host).vector_lanes == 4);  // the target's minimum
  CHECK(schedule_for(cpu, host).local_memory_bytes == host.local_memory_bytes);
}

TEST_CASE("every target prints the kernels of a small graph under its default schedule") {
  ir::Graph g;
  ir::Builder b(g);
  b.output(b.softmax(b.matmul(b.input("x", {ir::DType::f32, ir::static_shape({3, 64})}),
                              b.input("w", {ir::DType::f32, ir::static_shape({20, 64})}), true)));
  for (const Target& t : targets()) {
    const Capabilities& caps = capabilities_of(t);
    const Plan plan = lower(g, {}, schedule_for(t, caps));
    REQUIRE(!plan.kernels.empty());
    for (const PlanKernel& pk : plan.kernels) CHECK_MESSAGE(!t.print(pk.kernel, caps).empty(), t.name, " ", pk.kernel.name);
  }
}
