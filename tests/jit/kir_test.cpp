// Kernel IR: construction checks, the verifier, the stable printer (golden text), and
// hand-built kernels through the LLVM emitter and the CPU device (work-items, local
// memory, scalar arguments, dequantisation).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <map>
#include <memory>

#include "backends/cpu/llvm_verify.h"
#include "backends/device.h"
#include "ir/quant.h"
#include "ir/tensor.h"
#include "jit/block_formats.h"
#include "jit/emit_llvm.h"
#include "jit/kir.h"
#include "jit/legalize.h"
#include "jit/lower_builder.h"
#include "support/error.h"
#include "support/half.h"
#include "tests/test_data.h"
#include "tests/jit/conformance.h"
#include "tests/jit/table_kernel.h"

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
                              size_t result, const CpuFeatures& features = {}) {
  auto device = backends::open_cpu_device({.threads = 2});
  backends::Artifact ll = backends::Artifact::text("ll", emit_llvm(k, features), {k.name});
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

TEST_CASE("consecutive stores of reductions are computed together, bit for bit in the halving order of one") {
  // out[v] = reduce(x[v*lanes .. (v+1)*lanes)) for `count` named vectors, stored one after
  // another: the LLVM emitter reduces them jointly (joint_horizontal); each result must
  // equal the single vector's halving (lane i op lane i + half, repeated) exactly.
  for (const int lanes : {16, 32})
    for (const int count : {1, 3, 4, 16, 19})
      for (const ReduceOp op : {ReduceOp::add, ReduceOp::max}) {
        INFO(lanes << " lanes, " << count << " vectors, op " << static_cast<int>(op));
        Kernel k;
        k.name = "joint";
        const int64_t n = static_cast<int64_t>(lanes) * count;
        int x = k.add_buffer({"x", moat::ir::DType::f32, Space::global, n, false});
        int out = k.add_buffer({"out", moat::ir::DType::f32, Space::global, count, true});
        std::vector<NodeRef> body, stores;
        for (int v = 0; v < count; ++v) {
          const std::string name = "acc" + std::to_string(v);
          body.push_back(var(name, load(k, x, c_i64(static_cast<int64_t>(v) * lanes), lanes)));
          stores.push_back(store(k, out, c_i64(v), reduce(op, ref(name, kF32.with_lanes(lanes)))));
        }
        body.insert(body.end(), stores.begin(), stores.end());
        k.body = block(std::move(body));
        // two vectors' halves shuffled together: the joint path, taken for two or more
        const std::string ir = emit_llvm(k, {});
        const bool joint = ir.find("shufflevector <" + std::to_string(lanes) + " x float> %acc") != std::string::npos &&
                           ir.find(", <" + std::to_string(lanes) + " x float> %acc") != std::string::npos;
        CHECK(joint == (count > 1));
        const std::vector<float> xs = moat::testing::random_values(static_cast<size_t>(n), 7, -1e3f, 1e3f);
        const std::vector<float> got = run_on_cpu(k, {xs, std::vector<float>(static_cast<size_t>(count))}, {}, 1);
        for (int v = 0; v < count; ++v) {
          std::vector<float> lane(xs.begin() + v * lanes, xs.begin() + (v + 1) * lanes);
          for (size_t half = lane.size() / 2; half >= 1; half /= 2)
            for (size_t i = 0; i < half; ++i)
              lane[i] = op == ReduceOp::add ? lane[i] + lane[i + half] : std::max(lane[i], lane[i + half]);
          CHECK(got[static_cast<size_t>(v)] == lane[0]);
        }
      }
}

// An integer index expression's value with its refs bound by name.
int64_t eval_index(const NodeRef& e, const std::map<std::string, int64_t>& at) {
  switch (e->kind) {
    case NodeKind::constant: return e->i;
    case NodeKind::ref: return at.at(e->name);
    case NodeKind::binary: {
      const int64_t a = eval_index(e->args[0], at), b = eval_index(e->args[1], at);
      switch (static_cast<BinaryOp>(e->op)) {
        case BinaryOp::add: return a + b;
        case BinaryOp::sub: return a - b;
        case BinaryOp::mul: return a * b;
        case BinaryOp::div: return a / b;
        case BinaryOp::rem: return a % b;
        default: break;
      }
      break;
    }
    default: break;
  }
  FAIL("not index arithmetic: node kind ", static_cast<int>(e->kind));
  return 0;
}

int count_divisions(const NodeRef& e) {
  int n = e->kind == NodeKind::binary && (static_cast<BinaryOp>(e->op) == BinaryOp::div ||
                                          static_cast<BinaryOp>(e->op) == BinaryOp::rem);
  for (const NodeRef& a : e->args) n += count_divisions(a);
  return n;
}

TEST_CASE("index arithmetic: a sum scaled by a divisor of c, plus less than the scale, divides by c as the scaled part does") {
  // (16 r + j) / 64 = r / 4 and (16 r + j) % 64 = 16 (r % 4) + j for j in [0, 15]: one
  // division each instead of a division of the sum; j in [0, 16] must not fold.
  const NodeRef r = bounded_ref("r", 0, 31), j = bounded_ref("j", 0, 15), wide = bounded_ref("w", 0, 16);
  const NodeRef sum = iadd(imul(r, c_i64(16)), j), wide_sum = iadd(imul(r, c_i64(16)), wide);
  const NodeRef q = idiv(sum, 64), m = irem(sum, 64), q8 = idiv(iadd(sum, c_i64(32)), 64);
  CHECK(count_divisions(q) == 1);
  CHECK(count_divisions(m) == 1);
  CHECK(q->args[0] == r);
  for (int64_t rv = 0; rv <= 31; ++rv)
    for (int64_t jv = 0; jv <= 16; ++jv) {
      const std::map<std::string, int64_t> at{{"r", rv}, {"j", jv}, {"w", jv}};
      if (jv <= 15) {
        CHECK(eval_index(q, at) == (16 * rv + jv) / 64);
        CHECK(eval_index(m, at) == (16 * rv + jv) % 64);
        CHECK(eval_index(q8, at) == (16 * rv + jv + 32) / 64);
      }
      CHECK(eval_index(idiv(wide_sum, 64), at) == (16 * rv + jv) / 64);
      CHECK(eval_index(irem(wide_sum, 64), at) == (16 * rv + jv) % 64);
    }
  CHECK(count_divisions(idiv(wide_sum, 64)) == 1);
  CHECK(idiv(wide_sum, 64)->args[0] == wide_sum);  // not folded: w may reach 16
  // A concat part's offset folds into the index's constant term.
  CHECK(isub(iadd(j, c_i64(64)), 64) == j);
  CHECK(eval_index(isub(iadd(j, c_i64(64)), 60), {{"j", 3}}) == 7);
  CHECK(eval_index(isub(j, 5), {{"j", 3}}) == -2);
}

TEST_CASE("a CPU row reduction takes one order per row, whatever rows share the launch: vector lanes, halved, then the tail") {
  // reduce_sum / reduce_max over rows of 300 (a tail past the last whole vector), alone
  // and 8 rows at a time: row 0 must get the same bits either way, and exactly the
  // documented order (lane l sums elements l, l + lanes, ... in order; lanes halved
  // pairwise; the tail in order). A greedy request's text alone or batched rests on it.
  auto device = backends::open_cpu_device({.threads = 2});
  moat::runtime::KernelCache cache{{}};
  const Schedule schedule = moat::runtime::schedule_for(device->properties());
  const int64_t len = 300, lanes = schedule.vector_lanes;
  const std::vector<float> xs = moat::testing::random_values(static_cast<size_t>(8 * len), 11, -1e3f, 1e3f);
  for (const moat::ir::Op op : {moat::ir::Op::reduce_sum, moat::ir::Op::reduce_max}) {
    auto combine = [&](float a, float b) { return op == moat::ir::Op::reduce_sum ? a + b : std::max(a, b); };
    std::vector<float> want(8);
    for (int64_t r = 0; r < 8; ++r) {
      const float* row = xs.data() + r * len;
      std::vector<float> part(static_cast<size_t>(lanes), op == moat::ir::Op::reduce_sum ? 0.0f : -INFINITY);
      const int64_t whole = len / lanes * lanes;
      for (int64_t k = 0; k < whole; k += lanes)
        for (int64_t l = 0; l < lanes; ++l) part[static_cast<size_t>(l)] = combine(part[static_cast<size_t>(l)], row[k + l]);
      for (int64_t half = lanes / 2; half >= 1; half /= 2)
        for (int64_t l = 0; l < half; ++l) part[static_cast<size_t>(l)] = combine(part[static_cast<size_t>(l)], part[static_cast<size_t>(l + half)]);
      for (int64_t k = whole; k < len; ++k) part[0] = combine(part[0], row[k]);
      want[static_cast<size_t>(r)] = part[0];
    }
    for (const int64_t rows : {1, 8}) {
      INFO(moat::ir::op_name(op) << " of " << rows << " rows");
      moat::ir::Graph g;
      moat::ir::Builder b(g);
      b.output(b.reduce(op, b.input("x", moat::testing::tensor_type(moat::ir::DType::f32, {rows, len})), 1));
      moat::ir::Bindings bindings;
      bindings.tensors["x"] = moat::ir::HostTensor::from_f32(
          {rows, len}, std::vector<float>(xs.begin(), xs.begin() + rows * len), moat::ir::DType::f32);
      moat::runtime::Executor exec(*device, cache, lower(g, bindings.symbols, schedule));
      const std::vector<float> got = exec.run(bindings).at(0).to_f32();
      REQUIRE(got.size() == static_cast<size_t>(rows));
      for (int64_t r = 0; r < rows; ++r) CHECK(got[static_cast<size_t>(r)] == want[static_cast<size_t>(r)]);
    }
  }
}

TEST_CASE("constant tables: printed with their values - read by scalar and consecutive and gathered indices on the CPU") {
  const Kernel k = moat::testing::table_kernel();
  const std::string text = print(k);
  CHECK(text.find("  table %codes: i8[16] = {-127, -104, -83,") != std::string::npos);
  CHECK(text.find("  table %wide: i64[3] = {81985529216486895, -2, -9223372036854775808}") != std::string::npos);
  CHECK(text.find("table.i8x16 %codes[i64 0]") != std::string::npos);
  CHECK(moat::backends::cpu::verify_llvm_ir(emit_llvm(k)) == "");
  const std::vector<float> want = moat::testing::table_kernel_expected();
  CHECK(run_on_cpu(k, {moat::testing::kTableIndices, std::vector<float>(want.size())}, {}, 1) == want);
  // a scalarised copy reads the same lanes
  CHECK(run_on_cpu(scalarize(k), {moat::testing::kTableIndices, std::vector<float>(want.size())}, {}, 1) == want);

  Kernel twice = k;
  CHECK(twice.add_table({"codes", Scalar::i8, moat::testing::kTableCodes}) == 0);  // added once
  CHECK_THROWS_AS(twice.add_table({"codes", Scalar::u8, {1, 2}}), InternalError);
  Kernel bad = k;
  bad.tables[1].values[0] = 256;
  CHECK_THROWS_WITH_AS(verify(bad), doctest::Contains("table bytes: 256 is not a u8"), InternalError);
  CHECK_THROWS_AS(table_load(k, 3, c_i64(0)), InternalError);
  CHECK_THROWS_AS(table_load(k, 0, c_i32(0)), InternalError);
}

TEST_CASE("block formats: every quantised dtype has one, its fields lie in the block, f16 fields are aligned") {
  namespace ir = moat::ir;
  for (ir::DType d : ir::kAllDTypes) {
    if (!ir::is_quantised(d)) continue;
    const BlockFormat* f = find_block_format(d);
    REQUIRE_MESSAGE(f != nullptr, ir::dtype_name(d), " has no block format (jit/block_formats*.cpp)");
    CHECK(static_cast<bool>(f->one));
    CHECK(static_cast<bool>(f->chunk));
    int64_t covered = 0;
    for (const BlockField& field : f->fields) {
      CHECK_MESSAGE(field.offset + field.bytes <= ir::dtype_block_bytes(d), ir::dtype_name(d), ".", field.name);
      if (field.scalar == Scalar::f16) CHECK(field.offset % 2 == 0);
      if (field.scalar == Scalar::f32) CHECK((field.offset % 4 == 0 && ir::dtype_block_bytes(d) % 4 == 0));
      covered += field.bytes;
    }
    CHECK_MESSAGE(covered == ir::dtype_block_bytes(d), ir::dtype_name(d), ": the fields cover the block");
  }
}

TEST_CASE("dequant decodes every block format like the reference, 32 at a time and one element at a time") {
  for (const BlockFormat& format : block_formats()) {
    const moat::ir::DType d = format.dtype;
    const int64_t per_block = moat::ir::dtype_block_elems(d), bytes = moat::ir::dtype_block_bytes(d);
    std::vector<uint8_t> raw(static_cast<size_t>(2 * bytes));
    for (size_t i = 0; i < raw.size(); ++i) raw[i] = static_cast<uint8_t>((i * 37 + 11) % 256);
    for (int blk = 0; blk < 2; ++blk) {  // sane f16 / f32 scales (0.01)
      const uint16_t s = 0x211f;
      const float s32 = 0.01f;
      for (const BlockField& field : format.fields) {
        if (field.scalar == Scalar::f16) std::memcpy(raw.data() + blk * bytes + field.offset, &s, 2);
        if (field.scalar == Scalar::f32) std::memcpy(raw.data() + blk * bytes + field.offset, &s32, 4);
      }
    }
    std::vector<float> want(static_cast<size_t>(2 * per_block));
    moat::ir::dequantize_row(d, raw.data(), want.data(), 2 * per_block);

    for (int lanes : {32, 1}) {
      Kernel k;
      k.name = "deq";
      int w = k.add_buffer({"w", d, Space::global, 2 * per_block, false});
      int out = k.add_buffer({"out", moat::ir::DType::f32, Space::global, 2 * per_block, true});
      NodeRef at = add(mul(ref("b", kI64), c_i64(per_block)), ref("c", kI64));
      k.body = block({for_loop("b", c_i64(0), c_i64(2), c_i64(1),
                               {for_loop("c", c_i64(0), c_i64(per_block), c_i64(lanes),
                                         {store(k, out, at, dequant(k, w, ref("b", kI64), ref("c", kI64), lanes))})})});
      // the raw blocks travel as floats' bytes in run_on_cpu's float buffers
      std::vector<float> packed((raw.size() + 3) / 4);
      std::memcpy(packed.data(), raw.data(), raw.size());
      std::vector<float> got = run_on_cpu(k, {packed, std::vector<float>(want.size())}, {}, 1);
      for (size_t i = 0; i < want.size(); ++i)
        REQUIRE_MESSAGE(got[i] == want[i], moat::ir::dtype_name(d), " element ", i, ", ", lanes, " at a time");
    }
  }
}

TEST_CASE("the grid IQ formats decode gguf-py's vectors bit for bit, 32 at a time and one element at a time") {
  namespace ir = moat::ir;
  for (ir::DType d : {ir::DType::iq3_xxs, ir::DType::iq3_s, ir::DType::iq2_xxs, ir::DType::iq2_xs, ir::DType::iq2_s,
                      ir::DType::iq1_s, ir::DType::iq1_m}) {
    const std::string name(ir::dtype_name(d));
    const auto raw = moat::testing::read_vector<uint8_t>(name + ".blocks.bin");  // tools/make_quant_vectors.py
    const auto want = moat::testing::read_vector<float>(name + ".f32.bin");
    const auto n = static_cast<int64_t>(want.size());
    REQUIRE(n == static_cast<int64_t>(raw.size()) / ir::dtype_block_bytes(d) * 256);
    for (int lanes : {32, 1}) {
      Kernel k;
      k.name = "deq";
      int w = k.add_buffer({"w", d, Space::global, n, false});
      int out = k.add_buffer({"out", ir::DType::f32, Space::global, n, true});
      NodeRef at = add(mul(ref("b", kI64), c_i64(256)), ref("c", kI64));
      k.body = block({for_loop("b", c_i64(0), c_i64(n / 256), c_i64(1),
                               {for_loop("c", c_i64(0), c_i64(256), c_i64(lanes),
                                         {store(k, out, at, dequant(k, w, ref("b", kI64), ref("c", kI64), lanes))})})});
      std::vector<float> packed((raw.size() + 3) / 4);
      std::memcpy(packed.data(), raw.data(), raw.size());
      const std::vector<float> got = run_on_cpu(k, {packed, std::vector<float>(want.size())}, {}, 1);
      for (size_t i = 0; i < want.size(); ++i)
        REQUIRE_MESSAGE(std::memcmp(&got[i], &want[i], 4) == 0, name, " element ", i, ": ", got[i], " vs gguf ", want[i],
                        ", ", lanes, " at a time");
    }
  }
}

TEST_CASE("legalize_numerics leaves no dequant, qscale, qdot or quantize for a printer") {
  Kernel k;
  k.name = "numerics";
  int w = k.add_buffer({"w", moat::ir::DType::q4_k, Space::global, 256, false});
  int a = k.add_buffer({"a", moat::ir::DType::q8_0, Space::global, 64, true});
  int b = k.add_buffer({"b", moat::ir::DType::q4_0, Space::global, 64, false});
  int out = k.add_buffer({"out", moat::ir::DType::f32, Space::global, 64, true});
  k.body = block({store(k, out, c_i64(0), dequant(k, w, c_i64(0), c_i64(32))),
                  quantize(k, a, c_i64(0), load(k, out, c_i64(0), 32)),
                  store(k, out, c_i64(32), qdot(k, a, c_i64(0), b, c_i64(0), 2)),
                  store(k, out, c_i64(48), qscale(k, b, c_i64(1)))});
  const std::string text = print(legalize_numerics(k));
  for (const char* node : {"dequant", "qscale", "qdot", "quantize"}) CHECK_MESSAGE(text.find(node) == std::string::npos, node);
  CHECK(text.find("dot4(") != std::string::npos);
}

TEST_CASE("quantize writes ggml's q8_0 blocks - qdot is the exact integer dot scaled by d_a * d_b (VNNI and generic)") {
  namespace ir = moat::ir;
  // 4 blocks: random values, exact ties of the rounding (k + 0.5 steps), zeros, one large value
  std::vector<float> x(128);
  for (size_t i = 0; i < 32; ++i) x[i] = std::sin(static_cast<float>(i) * 1.7f) * 3.0f;
  for (size_t i = 32; i < 64; ++i) x[i] = (static_cast<float>(i % 9) - 4.0f) + 0.5f;  // amax 4.5: steps of 4.5/127
  x[63] = 127.0f;  // d = 1: every other value a tie of the rounding
  for (size_t i = 96; i < 128; ++i) x[i] = i == 100 ? -1e3f : 1e-3f * static_cast<float>(i);
  std::vector<uint8_t> want(4 * sizeof(ir::BlockQ8_0));
  ir::quantize_row_q8_0(x.data(), want.data(), 128);

  Kernel q;
  q.name = "quant";
  int in = q.add_buffer({"x", ir::DType::f32, Space::global, 128, false});
  int blocks = q.add_buffer({"q", ir::DType::q8_0, Space::global, 128, true});
  q.body = block({for_loop("b", c_i64(0), c_i64(4), c_i64(1),
                           {quantize(q, blocks, ref("b", kI64), load(q, in, mul(ref("b", kI64), c_i64(32)), 32))})});
  verify(q);
  std::vector<float> packed((want.size() + 3) / 4);
  const std::vector<float> got = run_on_cpu(q, {x, packed}, {}, 1);
  REQUIRE(std::memcmp(got.data(), want.data(), want.size()) == 0);

  // qdot of those activations with q8_0 and q4_0 weights: 2 blocks per qdot, 16 lanes
  for (ir::DType wd : {ir::DType::q8_0, ir::DType::q4_0}) {
    std::vector<float> wv(128);
    for (size_t i = 0; i < wv.size(); ++i) wv[i] = std::cos(static_cast<float>(i) * 0.37f) * 0.5f;
    ir::HostTensor w = ir::HostTensor::from_f32({128}, wv, wd);
    std::vector<float> wpacked((w.bytes().size() + 3) / 4);
    std::memcpy(wpacked.data(), w.bytes().data(), w.bytes().size());
    std::vector<float> expect(32);  // lanes of blocks 0-1, then 2-3
    for (int blk = 0; blk < 4; ++blk) {
      std::vector<float> a(32), b(32);
      ir::dequantize_row(ir::DType::q8_0, want.data() + blk * 34, a.data(), 32);
      const uint8_t* wb = w.bytes().data() + blk * ir::dtype_block_bytes(wd);
      ir::dequantize_row(wd, wb, b.data(), 32);
      ir::BlockQ8_0 ab;
      std::memcpy(&ab, want.data() + blk * 34, 34);
      uint16_t wd_bits;
      std::memcpy(&wd_bits, wb, 2);
      const float scale = moat::f16_to_f32(ab.d) * moat::f16_to_f32(wd_bits);
      for (int g = 0; g < 8; ++g) {
        int32_t sum = 0;
        for (int e = 4 * g; e < 4 * g + 4; ++e) {
          const int qa = ab.qs[e];
          const int qb = wd == ir::DType::q8_0 ? static_cast<int8_t>(wb[2 + e])
                                               : ((e < 16 ? wb[2 + e] : wb[2 + e - 16] >> 4) & 15) - 8;
          sum += qa * qb;
        }
        expect[static_cast<size_t>(blk * 8 + g)] = static_cast<float>(sum) * scale;
      }
    }
    Kernel d;
    d.name = "qdot";
    int qa = d.add_buffer({"a", ir::DType::q8_0, Space::global, 128, false});
    int qb = d.add_buffer({"w", wd, Space::global, 128, false});
    int out = d.add_buffer({"out", ir::DType::f32, Space::global, 32, true});
    d.body = block({for_loop("p", c_i64(0), c_i64(2), c_i64(1),
                             {store(d, out, mul(ref("p", kI64), c_i64(16)),
                                    qdot(d, qa, mul(ref("p", kI64), c_i64(2)), qb, mul(ref("p", kI64), c_i64(2)), 2))})});
    const std::unique_ptr<backends::Device> cpu = backends::open_cpu_device({});
    const backends::DeviceInfo& info = cpu->properties().info;
    const bool host_vnni = info.has_feature("avx512vnni") && info.has_feature("avx512vl");
    for (bool vnni : {false, true}) {
      if (vnni && !host_vnni) continue;  // this CPU cannot run vpdpbusd
      const std::vector<float> lanes = run_on_cpu(d, {got, wpacked, std::vector<float>(32)}, {}, 2,
                                                  CpuFeatures{.avx512_vnni = vnni});
      for (size_t i = 0; i < 32; ++i)
        REQUIRE_MESSAGE(lanes[i] == expect[i], ir::dtype_name(wd), (vnni ? " vnni" : " generic"), " lane ", i);
    }
  }
}

// The q8_k activation path: quantize_group writes quantize_row_q8_k's blocks bit for bit
// (ties, a zero block, a positive max), and qdot of q8_k with Q4_K / Q6_K weights sums
// to the dot product of the decoded blocks; VNNI and generic agree exactly.
TEST_CASE("quantize writes ggml's q8_k blocks - qdot of q8_k with q4_k and q6_k is the blocks' dot product") {
  namespace ir = moat::ir;
  std::vector<float> x(512);
  for (size_t i = 0; i < 256; ++i) x[i] = std::sin(static_cast<float>(i) * 1.3f) * 0.7f;
  x[17] = 0.9f;                                                                            // positive max
  for (size_t i = 256; i < 512; ++i) x[i] = static_cast<float>(static_cast<int>(i % 64) - 32) + 0.5f;
  x[300] = -127.0f;  // iscale 1: every other value an exact tie (to even)
  std::vector<uint8_t> want(2 * sizeof(ir::BlockQ8_K));
  ir::quantize_row_q8_k(x.data(), want.data(), 512);
  std::vector<float> zeros(256, 0.0f);
  std::vector<uint8_t> want_zero(sizeof(ir::BlockQ8_K));
  ir::quantize_row_q8_k(zeros.data(), want_zero.data(), 256);

  Kernel q;
  q.name = "quant_k";
  int in = q.add_buffer({"x", ir::DType::f32, Space::global, 512, false});
  int blocks = q.add_buffer({"q", ir::DType::q8_k, Space::global, 512, true});
  // the signed max is given (the lowering finds it); group g of block b
  NodeRef b = ref("b", kI64), g = ref("g", kI64);
  NodeRef vmax = select(binary(BinaryOp::eq, b, c_i64(0)), c_f32(0.9), c_f32(-127.0));
  q.body = block({for_loop("b", c_i64(0), c_i64(2), c_i64(1),
                           {for_loop("g", c_i64(0), c_i64(16), c_i64(1),
                                     {quantize_group(q, blocks, b, load(q, in, add(mul(b, c_i64(256)), mul(g, c_i64(16))), 16),
                                                     g, vmax)})})});
  verify(q);
  std::vector<float> packed((want.size() + 3) / 4);
  const std::vector<float> got = run_on_cpu(q, {x, packed}, {}, 1);
  REQUIRE(std::memcmp(got.data(), want.data(), want.size()) == 0);
  // a block of zeros (signed max 0): d, every quant and sum 0
  Kernel z;
  z.name = "quant_zero";
  int zin = z.add_buffer({"x", ir::DType::f32, Space::global, 256, false});
  int zq = z.add_buffer({"q", ir::DType::q8_k, Space::global, 256, true});
  z.body = block({for_loop("g", c_i64(0), c_i64(16), c_i64(1),
                           {quantize_group(z, zq, c_i64(0), load(z, zin, mul(g, c_i64(16)), 16), g, c_f32(0.0))})});
  std::vector<float> zpacked(sizeof(ir::BlockQ8_K) / 4, 1.0f);
  const std::vector<float> zgot = run_on_cpu(z, {zeros, zpacked}, {}, 1);
  REQUIRE(std::memcmp(zgot.data(), want_zero.data(), want_zero.size()) == 0);

  for (ir::DType wd : {ir::DType::q4_k, ir::DType::q6_k}) {
    // weights: decoded from pseudo-random blocks with sane f16 scales
    const int64_t wb = ir::dtype_block_bytes(wd);
    std::vector<uint8_t> w(static_cast<size_t>(2 * wb));
    for (size_t i = 0; i < w.size(); ++i) w[i] = static_cast<uint8_t>((i * 73 + 5) % 256);
    for (const BlockField& field : find_block_format(wd)->fields)
      if (field.scalar == Scalar::f16)
        for (int blk = 0; blk < 2; ++blk) {
          const uint16_t s = 0x211f;  // 0.01
          std::memcpy(w.data() + blk * wb + field.offset, &s, 2);
        }
    std::vector<float> a(512), bv(512);
    ir::dequantize_row(ir::DType::q8_k, want.data(), a.data(), 512);
    ir::dequantize_row(wd, w.data(), bv.data(), 512);
    double expect = 0, scale = 0;
    for (size_t i = 0; i < 512; ++i) {
      expect += static_cast<double>(a[i]) * bv[i];
      scale += std::fabs(static_cast<double>(a[i]) * bv[i]);
    }
    std::vector<float> wpacked((w.size() + 3) / 4);
    std::memcpy(wpacked.data(), w.data(), w.size());
    Kernel d;
    d.name = "qdot_k";
    int qa = d.add_buffer({"a", ir::DType::q8_k, Space::global, 512, false});
    int qb = d.add_buffer({"w", wd, Space::global, 512, false});
    int out = d.add_buffer({"out", ir::DType::f32, Space::global, 32, true});
    d.body = block({store(d, out, c_i64(0), qdot(d, qa, c_i64(0), qb, c_i64(0), 2))});
    const std::unique_ptr<backends::Device> cpu = backends::open_cpu_device({});
    const backends::DeviceInfo& info = cpu->properties().info;
    const bool host_vnni = info.has_feature("avx512vnni") && info.has_feature("avx512vl");
    std::vector<float> generic;
    for (bool vnni : {false, true}) {
      if (vnni && !host_vnni) continue;
      const std::vector<float> lanes = run_on_cpu(d, {got, wpacked, std::vector<float>(32)}, {}, 2,
                                                  CpuFeatures{.avx512_vnni = vnni});
      double sum = 0;
      for (float l : lanes) sum += l;
      CHECK_MESSAGE(std::fabs(sum - expect) <= 1e-5 * scale, ir::dtype_name(wd), ": ", sum, " vs ", expect);
      if (!vnni) generic = lanes;
      else CHECK(lanes == generic);
    }
  }
}

namespace {

std::vector<float> as_floats(const std::vector<uint8_t>& bytes) {
  std::vector<float> out((bytes.size() + 3) / 4);
  std::memcpy(out.data(), bytes.data(), bytes.size());
  return out;
}

}  // namespace

// Every format with an integer form multiplies with its activation type (ir/quant.h's
// activation_dtype: q8_0 per 32, q8_k per 256) to the dot product of the decoded blocks:
// the qdot lanes' sum against a double sum of the reference decoders' values, VNNI and
// generic alike, and codebook lookups by pshufb as by a load per lane.
TEST_CASE("qdot of every integer form with its activation type is the decoded blocks' dot product") {
  namespace ir = moat::ir;
  const std::unique_ptr<backends::Device> cpu = backends::open_cpu_device({});
  const backends::DeviceInfo& info = cpu->properties().info;
  const bool host_vnni = info.has_feature("avx512vnni") && info.has_feature("avx512vl");
  const bool host_pshufb = info.has_feature("ssse3");
  int checked = 0;
  for (const BlockFormat& format : block_formats()) {
    const ir::DType wd = format.dtype;
    const ir::DType ad = ir::activation_dtype(wd);
    if (ad == ir::DType::f32) continue;
    CAPTURE(ir::dtype_name(wd));
    const bool has_form = ad == ir::DType::q8_0 ? format.integers != nullptr : format.sub_integers != nullptr;
    REQUIRE_MESSAGE(has_form, "no integer form for its activation type");
    const int64_t elems = 2 * ir::dtype_block_elems(ad) * (ad == ir::DType::q8_0 ? 2 : 1);  // 4 q8_0 blocks, 2 q8_k
    std::vector<float> x(static_cast<size_t>(elems));
    for (size_t i = 0; i < x.size(); ++i) x[i] = std::sin(static_cast<float>(i) * 1.3f + 0.2f) * 0.8f;
    std::vector<uint8_t> a(static_cast<size_t>(ir::tensor_bytes(ad, {elems})));
    if (ad == ir::DType::q8_0) ir::quantize_row_q8_0(x.data(), a.data(), elems);
    else ir::quantize_row_q8_k(x.data(), a.data(), elems);
    const ir::HostTensor weights = moat::testing::random_tensor(wd, {elems}, 7);
    const std::vector<uint8_t> w(weights.bytes().begin(), weights.bytes().end());
    std::vector<float> av(static_cast<size_t>(elems)), bv(static_cast<size_t>(elems));
    ir::dequantize_row(ad, a.data(), av.data(), elems);
    ir::dequantize_row(wd, w.data(), bv.data(), elems);
    double expect = 0, scale = 0;
    for (size_t i = 0; i < av.size(); ++i) {
      expect += static_cast<double>(av[i]) * bv[i];
      scale += std::fabs(static_cast<double>(av[i]) * bv[i]);
    }
    const int blocks = static_cast<int>(elems / ir::dtype_block_elems(ad));
    const int lanes = blocks * (ad == ir::DType::q8_0 ? 8 : 16);
    Kernel d;
    d.name = "qdot_forms";
    int qa = d.add_buffer({"a", ad, Space::global, elems, false});
    int qb = d.add_buffer({"w", wd, Space::global, elems, false});
    int out = d.add_buffer({"out", ir::DType::f32, Space::global, lanes, true});
    d.body = block({store(d, out, c_i64(0), qdot(d, qa, c_i64(0), qb, c_i64(0), blocks))});
    if (wd == ir::DType::iq4_nl || wd == ir::DType::iq4_xs || wd == ir::DType::mxfp4)  // 16-entry codebooks
      CHECK(emit_llvm(d, CpuFeatures{.pshufb = true}).find("llvm.x86.ssse3.pshuf.b.128") != std::string::npos);
    std::vector<float> generic;
    for (const CpuFeatures features : {CpuFeatures{}, CpuFeatures{.avx512_vnni = true}, CpuFeatures{.pshufb = true},
                                       CpuFeatures{.avx512_vnni = true, .pshufb = true}}) {
      if ((features.avx512_vnni && !host_vnni) || (features.pshufb && !host_pshufb)) continue;
      const std::vector<float> got = run_on_cpu(d, {as_floats(a), as_floats(w), std::vector<float>(static_cast<size_t>(lanes))},
                                                {}, 2, features);
      double sum = 0;
      for (float l : got) sum += l;
      CHECK_MESSAGE(std::fabs(sum - expect) <= 1e-5 * scale, "vnni ", features.avx512_vnni, " pshufb ", features.pshufb, ": ",
                    sum, " vs ", expect);
      if (generic.empty()) generic = got;
      else CHECK(got == generic);
    }
    ++checked;
  }
  CHECK(checked == 20);  // q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, mxfp4, q2_k .. q6_k, iq4_xs and the 7 grid types
}
