// Kernel IR: construction checks, the verifier, the stable printer (golden text), and
// hand-built kernels through the LLVM emitter and the CPU device (work-items, local
// memory, scalar arguments, dequantisation).
#include <doctest/doctest.h>

#include <cstring>

#include "backends/cpu/llvm_verify.h"
#include "backends/device.h"
#include "ir/quant.h"
#include "ir/tensor.h"
#include "jit/emit_llvm.h"
#include "jit/kir.h"
#include "support/error.h"

using namespace moat::jit;
using moat::InternalError;
namespace backends = moat::backends;

namespace {

// y[i] = a * x[i] + y[i] over n elements, one element per work-item, 4 items per group.
Kernel saxpy_kernel(int64_t n) {
  Kernel k;
  k.name = "saxpy";
  int x = k.add_buffer({"x", moat::ir::DType::f32, Space::global, n, false});
  int y = k.add_buffer({"y", moat::ir::DType::f32, Space::global, n, true});
  int a = k.add_scalar({"a", Scalar::f32});
  k.groups[0] = (n + 3) / 4;
  k.items[0] = 4;
  NodeRef i = add(mul(builtin(Builtin::group_id, 0), c_i64(4)), builtin(Builtin::item_id, 0));
  k.body = block({let("i", i),
                  if_then(lt(ref("i", kI64), c_i64(n)),
                          {store(k, y, ref("i", kI64),
                                 fma(scalar_arg(k, a), load(k, x, ref("i", kI64)), load(k, y, ref("i", kI64))))})});
  return k;
}

std::vector<float> run_on_cpu(const Kernel& k, std::vector<std::vector<float>> buffers, std::vector<backends::KernelArg> scalars,
                              size_t result) {
  auto device = backends::open_cpu_device({.threads = 2});
  backends::Artifact ll = backends::Artifact::text("ll", emit_llvm(k), {k.name});
  auto module = device->load(device->compile(ll));
  std::vector<std::unique_ptr<backends::Buffer>> owned;
  std::vector<backends::KernelArg> args;
  size_t next_buffer = 0, next_scalar = 0;
  for (const Param& p : k.params) {
    if (p.is_buffer) {
      auto& host = buffers[next_buffer++];
      owned.push_back(device->allocate(host.size() * sizeof(float)));
      device->stream().write(*owned.back(), 0, host.data(), host.size() * sizeof(float));
      args.push_back(backends::KernelArg::of(*owned.back()));
    } else {
      args.push_back(scalars[next_scalar++]);
    }
  }
  backends::Grid grid;
  for (int d = 0; d < 3; ++d) {
    grid.groups[d] = k.groups[d];
    grid.items[d] = k.items[d];
  }
  device->stream().launch(module->kernel(k.name), grid, args);
  std::vector<float> out(buffers[result].size());
  device->stream().read(*owned[result], 0, out.data(), out.size() * sizeof(float));
  device->stream().synchronize();
  return out;
}

}  // namespace

TEST_CASE("construction checks operand types") {
  CHECK_THROWS_AS(add(c_i64(1), c_f32(1.0)), InternalError);
  CHECK_THROWS_AS(unary(UnaryOp::exp, c_i64(1)), InternalError);
  CHECK_THROWS_AS(select(c_i64(1), c_f32(1), c_f32(2)), InternalError);
  CHECK_THROWS_AS(for_loop("i", c_f32(0), c_i64(1), c_i64(1), {}), InternalError);
  CHECK(binary(BinaryOp::lt, c_f32(1), c_f32(2))->type == kBool);
  CHECK(broadcast(c_f32(1), 8)->type == Type{Scalar::f32, 8});
  CHECK(reduce(ReduceOp::add, broadcast(c_f32(1), 8))->type == kF32);
}

TEST_CASE("the verifier names the kernel and the mistake") {
  Kernel k;
  k.name = "bad";
  int y = k.add_buffer({"y", moat::ir::DType::f32, Space::global, 4, false});
  k.body = block({store(k, y, c_i64(0), c_f32(1))});
  CHECK_THROWS_WITH_AS(verify(k), doctest::Contains("kernel bad: store to %y, which is not declared written"), InternalError);

  k.buffers[y].written = true;
  k.body = block({store(k, y, c_i64(0), ref("v", kF32))});
  CHECK_THROWS_WITH_AS(verify(k), doctest::Contains("%v is used before it is bound"), InternalError);

  k.body = block({let("v", c_f32(1)), assign("v", c_f32(2))});
  CHECK_THROWS_WITH_AS(verify(k), doctest::Contains("assignment to %v, which is not a var"), InternalError);

  k.body = block({let("v", c_f32(1)), let("v", c_f32(2))});
  CHECK_THROWS_WITH_AS(verify(k), doctest::Contains("%v is bound twice"), InternalError);

  k.body = block({var("v", c_f32(1)), let("w", add(ref("v", kI64), c_i64(1)))});
  CHECK_THROWS_WITH_AS(verify(k), doctest::Contains("%v is f32, used as i64"), InternalError);
}

TEST_CASE("printer: stable text of a kernel (golden)") {
  const std::string want =
      "kernel saxpy(%x: global readonly f32[10], %y: global f32[10], $a: f32)\n"
      "  grid groups=[3, 1, 1] items=[4, 1, 1]\n"
      "  %i = add(mul(group_id(0), i64 4), item_id(0))\n"
      "  if lt(%i, i64 10) {\n"
      "    store %y[%i], fma($a, load.f32 %x[%i], load.f32 %y[%i])\n"
      "  }\n";
  CHECK(print(saxpy_kernel(10)) == want);
}

TEST_CASE("emitted LLVM IR passes the LLVM verifier, a kernel runs its work-items") {
  const Kernel k = saxpy_kernel(10);
  CHECK(moat::backends::cpu::verify_llvm_ir(emit_llvm(k)) == "");
  std::vector<float> x(10), y(10);
  for (int i = 0; i < 10; ++i) {
    x[i] = static_cast<float>(i);
    y[i] = 100.0f;
  }
  std::vector<float> out = run_on_cpu(k, {x, y}, {backends::KernelArg::of_f32(0.5f)}, 1);
  for (int i = 0; i < 10; ++i) CHECK(out[i] == 100.0f + 0.5f * static_cast<float>(i));
}

TEST_CASE("the CPU target refuses barriers with several work-items per group") {
  Kernel k = saxpy_kernel(8);
  k.body = block({barrier()});
  CHECK_THROWS_WITH_AS(emit_llvm(k), doctest::Contains("kernel saxpy: barriers"), InternalError);
}

TEST_CASE("local memory, vectors and horizontal reductions") {
  // out[0] = sum of x[0..16) computed as a 16-lane vector staged through local memory
  Kernel k;
  k.name = "local_sum";
  int x = k.add_buffer({"x", moat::ir::DType::f32, Space::global, 16, false});
  int out = k.add_buffer({"out", moat::ir::DType::f32, Space::global, 1, true});
  int tmp = k.add_buffer({"tmp", moat::ir::DType::f32, Space::local, 16, false});
  k.body = block({store(k, tmp, c_i64(0), load(k, x, c_i64(0), 16)), barrier(),
                  store(k, out, c_i64(0), reduce(ReduceOp::add, load(k, tmp, c_i64(0), 16)))});
  std::vector<float> xs(16);
  for (int i = 0; i < 16; ++i) xs[i] = static_cast<float>(i + 1);
  CHECK(run_on_cpu(k, {xs, {0.0f}}, {}, 1)[0] == 136.0f);
}

TEST_CASE("dequant decodes q4_k and q6_k chunks like the reference") {
  for (moat::ir::DType d : {moat::ir::DType::q4_k, moat::ir::DType::q6_k, moat::ir::DType::q8_0, moat::ir::DType::q4_0}) {
    const int64_t per_block = moat::ir::dtype_block_elems(d), bytes = moat::ir::dtype_block_bytes(d);
    std::vector<uint8_t> raw(static_cast<size_t>(2 * bytes));
    for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<uint8_t>((i * 37 + 11) % 256);
    for (int blk = 0; blk < 2; ++blk) {  // sane f16 scales (0.01)
      const uint16_t s = 0x211f;
      const size_t at = d == moat::ir::DType::q6_k ? 208 : 0;
      std::memcpy(raw.data() + blk * bytes + at, &s, 2);
      if (d == moat::ir::DType::q4_k) std::memcpy(raw.data() + blk * bytes + 2, &s, 2);
    }
    std::vector<float> want(static_cast<size_t>(2 * per_block));
    moat::ir::dequantize_row(d, raw.data(), want.data(), 2 * per_block);

    Kernel k;
    k.name = "deq";
    int w = k.add_buffer({"w", d, Space::global, 2 * per_block, false});
    int out = k.add_buffer({"out", moat::ir::DType::f32, Space::global, 2 * per_block, true});
    k.body = block({for_loop("b", c_i64(0), c_i64(2), c_i64(1),
                             {for_loop("c", c_i64(0), c_i64(per_block), c_i64(32),
                                       {store(k, out, add(mul(ref("b", kI64), c_i64(per_block)), ref("c", kI64)),
                                              dequant(k, w, ref("b", kI64), ref("c", kI64)))})})});
    // the raw blocks travel as floats' bytes in run_on_cpu's float buffers
    std::vector<float> packed((raw.size() + 3) / 4);
    std::memcpy(packed.data(), raw.data(), raw.size());
    std::vector<float> got = run_on_cpu(k, {packed, std::vector<float>(want.size())}, {}, 1);
    for (size_t i = 0; i < want.size(); ++i) REQUIRE_MESSAGE(got[i] == want[i], moat::ir::dtype_name(d), " element ", i);
  }
}
