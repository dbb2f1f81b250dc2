// runtime/device_target.h: a device's properties become the JIT's target, capabilities
// and schedule; emit_for prints with the table's printer.
#include <doctest/doctest.h>

#include <algorithm>

#include "backends/device.h"
#include "runtime/device_target.h"
#include "runtime/emit.h"
#include "support/error.h"

using namespace moat;

namespace {

backends::DeviceProperties fake(const char* backend, const char* arch) {
  backends::DeviceProperties p;
  p.info.id = std::string(backend) + ":0";
  p.info.backend = backend;
  p.info.arch = arch;
  p.max_work_group_size = 1024;
  p.local_memory_bytes = 48 * 1024;
  p.sub_group_size = 32;
  p.vector_bits = 128;
  return p;
}

jit::Kernel tiny_kernel() {
  jit::Kernel k;
  k.name = "tiny";
  const int y = k.add_buffer({.name = "y", .dtype = ir::DType::f32, .elements = 4, .written = true});
  k.body = jit::block({jit::store(k, y, jit::builtin(jit::Builtin::item_id, 0), jit::c_f32(1.0))});
  k.items[0] = 4;
  return k;
}

}  // namespace

TEST_CASE("the host CPU: its target, its own vector width and limits, the schedule it always had") {
  const std::unique_ptr<backends::Device> cpu = backends::open_cpu_device({});
  const backends::DeviceProperties& p = cpu->properties();
  CHECK(runtime::target_of(p).format == "ll");
  const jit::Capabilities caps = runtime::capabilities_of(p);
  CHECK(caps.vector_bits == p.vector_bits);
  CHECK(caps.local_memory_bytes == p.local_memory_bytes);
  CHECK(caps.int8_dot == (p.info.has_feature("avx512vnni") && p.info.has_feature("avx512vl")));
  const jit::Schedule s = runtime::schedule_for(p);
  CHECK(!s.gpu);
  CHECK(s.vector_lanes == std::clamp(p.vector_bits / 32, 4, 16));
  CHECK(s.local_memory_bytes == p.local_memory_bytes);
  CHECK(runtime::emit_for(p, tiny_kernel()).format == "ll");
}

TEST_CASE("a CUDA device of a known architecture: the table's record with the device's own limits") {
  backends::DeviceProperties p = fake("cuda", "sm_90");
  p.local_memory_bytes = 40 * 1024;
  const jit::Capabilities caps = runtime::capabilities_of(p);
  CHECK(caps.arch == "sm_90");
  CHECK(!caps.matrix_shapes.empty());  // from the table
  CHECK(caps.local_memory_bytes == 40 * 1024);  // from the device
  const jit::Schedule s = runtime::schedule_for(p);
  CHECK(s.gpu);
  CHECK(s.work_group_size == 256);
  CHECK(s.sub_group_size == 32);
  const backends::Artifact a = runtime::emit_for(p, tiny_kernel());
  CHECK(a.format == "ptx");
  CHECK(a.as_text().find(".target sm_90") != std::string::npos);
}

TEST_CASE("an unknown architecture assumes nothing beyond what the device reports") {
  const jit::Capabilities caps = runtime::capabilities_of(fake("hip", "gfx9999"));
  CHECK(caps.matrix_shapes.empty());
  CHECK(!caps.sub_group_shuffle);
  CHECK(!caps.int8_dot);
  CHECK(caps.sub_group_size == 32);
  CHECK(runtime::schedule_for(fake("hip", "gfx9999")).sub_group_size == 1);
}

TEST_CASE("OpenCL devices take the format asked for - a backend without a target is a user error") {
  const backends::DeviceProperties p = fake("opencl", "OpenCL 3.0");
  CHECK(runtime::target_of(p).format == "cl");
  CHECK(runtime::target_of(p, "spv").format == "spv");
  CHECK(runtime::emit_for(p, tiny_kernel(), "bc-spir").format == "bc-spir");
  CHECK_THROWS_AS(runtime::target_of(fake("metal", "")), UserError);
  CHECK_THROWS_AS(runtime::emit_for(fake("metal", ""), tiny_kernel()), UserError);
}
