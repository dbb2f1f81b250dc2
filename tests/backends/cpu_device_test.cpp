// The CPU backend: LLVM IR kernels compiled, loaded and launched over the thread pool,
// with the kernel ABI of backends/cpu/kernel_abi.h (the pool alone: thread_pool_test).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "backends/cpu/llvm_compiler.h"
#include "backends/cpu/llvm_host.h"
#include "backends/cpu/llvm_verify.h"
#include "backends/device.h"
#include "support/error.h"
#include "tests/backends/ll_kernels.h"
#include "tests/user_error_of.h"

using namespace moat;
using namespace moat::backends;
using moat::testing::user_error_of;

namespace {

std::unique_ptr<Device> cpu_with(int threads) {
  CpuOptions options;
  options.threads = threads;
  return open_device("cpu", options);
}

std::unique_ptr<Module> build(Device& device, const char* ll, const char* kernel) {
  return device.load(device.compile(Artifact::text("ll", ll, {kernel})));
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST_CASE("cpu device properties") {
  auto device = cpu_with(2);
  const DeviceProperties& p = device->properties();
  CHECK(p.info.id == "cpu");
  CHECK(p.info.backend == "cpu");
  CHECK(p.max_work_group_size == 1024);
  CHECK(p.local_memory_bytes == (1 << 20));
  CHECK(p.sub_group_size == 1);
  bool avx512 = std::find(p.info.features.begin(), p.info.features.end(), "avx512f") != p.info.features.end();
  CHECK(p.vector_bits == (avx512 ? 512 : p.vector_bits));
  CHECK((p.vector_bits == 128 || p.vector_bits == 256 || p.vector_bits == 512));
  for (const char* dtype : {"f32", "f16", "bf16", "i64", "i8", "bool"})
    CHECK(std::find(p.dtypes.begin(), p.dtypes.end(), dtype) != p.dtypes.end());
  std::vector<std::string> types{"q4_k", "f32"};  // storage types are decoded by the JIT: not listed, supported
  CHECK(device->supports_op("matmul", types));
  std::string fingerprint = device->compile_fingerprint();
  CHECK(contains(fingerprint, "llvm 14"));
  CHECK(contains(fingerprint, "cpu="));
  CHECK(contains(fingerprint, "features=+"));
  CHECK(fingerprint == cpu_with(1)->compile_fingerprint());
}

TEST_CASE("open_device names the unknown id and lists the available ones") {
  std::string message = user_error_of([] { open_device("opencl:7"); });
  CHECK(contains(message, "opencl:7"));
  CHECK(contains(message, "available: cpu"));
  CHECK(contains(user_error_of([] { cpu_with(-1); }), "threads"));
}

TEST_CASE("buffers: 64-byte aligned, zero-copy host wrapping, stream copies") {
  auto device = cpu_with(1);
  for (uint64_t bytes : {0, 1, 63, 64, 1000, 1 << 20}) {
    auto buffer = device->allocate(bytes);
    CHECK(buffer->size() == bytes);
    REQUIRE(buffer->host_pointer() != nullptr);
    CHECK(reinterpret_cast<uintptr_t>(buffer->host_pointer()) % 64 == 0);
  }
  std::vector<float> host{1, 2, 3, 4};
  auto wrapped = device->wrap_host(host.data(), host.size() * sizeof(float));
  CHECK(wrapped->host_pointer() == host.data());
  CHECK(wrapped->size() == 16);

  auto buffer = device->allocate(16);
  device->stream().write(*buffer, 4, host.data(), 8);
  float back[2] = {};
  device->stream().read(*buffer, 4, back, 8);
  CHECK(back[0] == 1);
  CHECK(back[1] == 2);
  CHECK_THROWS_AS(device->stream().write(*buffer, 12, host.data(), 8), InternalError);
}

TEST_CASE("saxpy over groups: 1 group, many groups, odd counts, several thread counts") {
  for (int threads : {1, 2, 3, 8}) {
    auto device = cpu_with(threads);
    auto module = build(*device, testing::kSaxpyLl, "saxpy");
    Kernel& saxpy = module->kernel("saxpy");
    CHECK(saxpy.name() == "saxpy");
    for (int64_t groups : {1, 2, 7, 64, 1001}) {
      for (int64_t items : {1, 32, 33}) {
        int64_t n = groups * items - (items > 1 ? 5 : 0);  // the last group is partial
        auto x = device->allocate(n * sizeof(float));
        auto y = device->allocate(groups * items * sizeof(float));
        auto* xs = static_cast<float*>(x->host_pointer());
        auto* ys = static_cast<float*>(y->host_pointer());
        for (int64_t i = 0; i < groups * items; ++i) {
          if (i < n) xs[i] = static_cast<float>(i);
          ys[i] = static_cast<float>(2 * i);
        }
        Grid grid;
        grid.groups[0] = groups;
        grid.items[0] = items;
        KernelArg args[] = {KernelArg::of(*x), KernelArg::of(*y), KernelArg::of_f32(0.5f), KernelArg::of_i64(n)};
        device->stream().launch(saxpy, grid, args);
        device->stream().synchronize();
        int64_t wrong = 0;
        for (int64_t i = 0; i < groups * items; ++i) {
          float expected = i < n ? 2.5f * static_cast<float>(i) : static_cast<float>(2 * i);
          if (ys[i] != expected) ++wrong;
        }
        CHECK_MESSAGE(wrong == 0, "threads ", threads, " groups ", groups, " items ", items);
      }
    }
  }
}

TEST_CASE("3-D grids: every work-group and work-item runs exactly once with its ids") {
  struct Case {
    int64_t groups[3], items[3];
  };
  const Case cases[] = {{{1, 1, 1}, {1, 1, 1}},     {{3, 5, 7}, {2, 1, 3}}, {{17, 1, 1}, {64, 1, 1}},
                        {{1, 1, 9}, {1, 4, 1}},     {{4, 3, 2}, {5, 1, 1}}, {{0, 3, 2}, {5, 1, 1}},
                        {{2, 2, 200}, {1, 1, 1}}};
  for (int threads : {1, 2, 5}) {
    auto device = cpu_with(threads);
    auto module = build(*device, testing::kGridIdsLl, "grid_ids");
    for (const Case& c : cases) {
      Grid grid;
      int64_t n_groups = 1, n_items = 1;
      for (int d = 0; d < 3; ++d) {
        grid.groups[d] = c.groups[d];
        grid.items[d] = c.items[d];
        n_groups *= c.groups[d];
        n_items *= c.items[d];
      }
      auto out = device->allocate(std::max<int64_t>(1, n_groups * n_items) * sizeof(int64_t));
      auto* values = static_cast<int64_t*>(out->host_pointer());
      std::fill(values, values + n_groups * n_items, 0);
      KernelArg args[] = {KernelArg::of(*out)};
      device->stream().launch(module->kernel("grid_ids"), grid, args);
      int64_t wrong = 0;
      for (int64_t z = 0; z < c.groups[2]; ++z)
        for (int64_t y = 0; y < c.groups[1]; ++y)
          for (int64_t x = 0; x < c.groups[0]; ++x)
            for (int64_t t = 0; t < n_items; ++t) {
              int64_t linear = x + c.groups[0] * (y + c.groups[1] * z);
              int64_t expected = 1 + x + 100 * y + 10000 * z + 1000000 * t;
              if (values[linear * n_items + t] != expected) ++wrong;
            }
      CHECK_MESSAGE(wrong == 0, "threads ", threads, " groups ", c.groups[0], "x", c.groups[1], "x", c.groups[2]);
    }
  }
}

TEST_CASE("kernels call libm through the JIT's process symbols") {
  auto device = cpu_with(2);
  auto module = build(*device, testing::kExpHalfLl, "exp_half");
  std::vector<float> in(100), out(100, -1);
  for (int i = 0; i < 100; ++i) in[i] = -5.0f + 0.1f * static_cast<float>(i);
  auto in_buffer = device->wrap_host(in.data(), in.size() * sizeof(float));
  auto out_buffer = device->wrap_host(out.data(), out.size() * sizeof(float));
  Grid grid;
  grid.groups[0] = 100;
  KernelArg args[] = {KernelArg::of(*in_buffer), KernelArg::of(*out_buffer)};
  device->stream().launch(module->kernel("exp_half"), grid, args);
  for (int i = 0; i < 100; ++i) CHECK(out[i] == doctest::Approx(std::exp(in[i]) * 0.5f).epsilon(1e-6));
}

TEST_CASE("a loop of exp calls libmvec's vector expf where glibc has it, and the JIT links it") {
  const std::string ir = cpu::optimise_llvm_ir(Artifact::text("ll", testing::kExpHalfLl, {"exp_half"}));
  if (cpu::host_target().vector_math != "libmvec") {
    MESSAGE("skipped: no libmvec.so.1 on this host (one libm call per element)");
    CHECK(!contains(ir, "_ZGV"));
    return;
  }
  CHECK(contains(ir, "_ZGV"));  // _ZGVdN8v_expf, _ZGVbN4v_expf: the vectorised loop's calls
  CHECK(contains(cpu_with(1)->compile_fingerprint(), "veclib=libmvec"));  // cached objects say so
  // One group of many elements: the vector calls and the scalar remainder, against libm.
  auto device = cpu_with(1);
  auto module = build(*device, testing::kExpHalfLl, "exp_half");
  const int n = 1003;
  std::vector<float> in(n), out(n, -1);
  for (int i = 0; i < n; ++i) in[i] = -80.0f + 0.159f * static_cast<float>(i);
  in[500] = 100.0f;  // overflows to +inf, as libm's does
  in[501] = -110.0f;  // underflows to 0
  auto in_buffer = device->wrap_host(in.data(), in.size() * sizeof(float));
  auto out_buffer = device->wrap_host(out.data(), out.size() * sizeof(float));
  Grid grid;
  grid.groups[0] = n;
  KernelArg args[] = {KernelArg::of(*in_buffer), KernelArg::of(*out_buffer)};
  device->stream().launch(module->kernel("exp_half"), grid, args);
  for (int i = 0; i < n; ++i)
    if (i != 500) CHECK_MESSAGE(out[i] == doctest::Approx(std::exp(in[i]) * 0.5f).epsilon(4e-7), "x = ", in[i]);
  CHECK(std::isinf(out[500]));
  CHECK(out[501] == 0.0f);
}

TEST_CASE("modules: same kernel name in two modules, unloading one keeps the other") {
  auto device = cpu_with(2);
  auto first = build(*device, testing::kSaxpyLl, "saxpy");
  auto second = build(*device, testing::kSaxpyLl, "saxpy");
  first.reset();
  std::vector<float> x{1, 2}, y{10, 20};
  auto xb = device->wrap_host(x.data(), 8);
  auto yb = device->wrap_host(y.data(), 8);
  Grid grid;
  grid.groups[0] = 2;
  KernelArg args[] = {KernelArg::of(*xb), KernelArg::of(*yb), KernelArg::of_f32(3.0f), KernelArg::of_i64(2)};
  device->stream().launch(second->kernel("saxpy"), grid, args);
  CHECK(y[0] == 13);
  CHECK(y[1] == 26);
}

TEST_CASE("a module reports an unknown kernel name as a UserError") {
  auto device = cpu_with(1);
  auto module = build(*device, testing::kSaxpyLl, "saxpy");
  std::string message = user_error_of([&] { module->kernel("saxpi"); });
  CHECK(contains(message, "saxpi"));
  CHECK(contains(message, "saxpy"));
}

TEST_CASE("invalid LLVM IR is rejected with the parser's or verifier's message") {
  CHECK(cpu::verify_llvm_ir(testing::kSaxpyLl).empty());

  const char* syntax =
      "define void @broken(i64* %a, i64* %g, i64 %b, i64 %e) {\n  %x = frobnicate i64 1\n  ret void\n}\n";
  std::string parse_message = cpu::verify_llvm_ir(syntax);
  CHECK(contains(parse_message, "2:8: error: expected instruction opcode"));
  CHECK(contains(parse_message, "error"));

  const char* dominance = R"(
define void @broken(i64* %a, i64* %g, i64 %b, i64 %e) {
entry:
  br label %next
next:
  %x = add i64 %y, 1
  %y = add i64 %x, 1
  ret void
}
)";
  std::string verify_message = cpu::verify_llvm_ir(dominance);
  CHECK(contains(verify_message, "does not dominate"));

  auto device = cpu_with(1);
  std::string compile_message = user_error_of([&] { device->compile(Artifact::text("ll", dominance, {"broken"})); });
  CHECK(contains(compile_message, "broken"));
  CHECK(contains(compile_message, "does not dominate"));
  CHECK(contains(user_error_of([&] { device->compile(Artifact::text("ll", syntax, {"broken"})); }), "broken"));
}

TEST_CASE("kernels must be defined and follow the ABI, formats are checked") {
  auto device = cpu_with(1);
  std::string missing = user_error_of([&] { device->compile(Artifact::text("ll", testing::kSaxpyLl, {"gemv"})); });
  CHECK(contains(missing, "'gemv' is not defined"));
  const char* wrong_abi = "define void @k(float* %x) {\n  ret void\n}\n";
  CHECK(contains(user_error_of([&] { device->compile(Artifact::text("ll", wrong_abi, {"k"})); }), "kernel ABI"));
  CHECK(contains(user_error_of([&] { device->compile(Artifact::text("ptx", "", {"k"})); }), "\"ptx\""));
  CHECK(contains(user_error_of([&] { device->load(Artifact::text("ll", testing::kEmptyLl, {"empty"})); }),
                 "compile the source first"));
  Artifact garbage = Artifact::text("o", "not an object file", {"empty"});
  CHECK(contains(user_error_of([&] { device->load(garbage); }), "empty"));
}

TEST_CASE("the optimised IR targets the host CPU") {
  std::string ir = cpu::optimise_llvm_ir(Artifact::text("ll", testing::kSaxpyLl, {"saxpy"}));
  CHECK(contains(ir, "\"target-cpu\"="));
  CHECK(contains(ir, "\"target-features\"="));
  CHECK(contains(ir, "target triple"));
  Artifact object = cpu::compile_llvm_ir(Artifact::text("ll", testing::kSaxpyLl, {"saxpy"}));
  CHECK(object.format == "o");
  REQUIRE(object.bytes.size() > 4);
  CHECK(std::memcmp(object.bytes.data(), "\x7f" "ELF", 4) == 0);
}
