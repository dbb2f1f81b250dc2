// narrow_index_arithmetic (jit/legalize.h): index arithmetic in i32 where the kernel's
// ranges allow, divisions by constants as shifts or multiply-highs. The rewritten
// kernels run on the CPU (LLVM) against the C++ operators, at the edges of the ranges
// where an error would show (0 and just below 2^31), for hundreds of divisors.
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "backends/device.h"
#include "jit/emit_llvm.h"
#include "jit/kir_visitor.h"
#include "jit/legalize.h"

using namespace moat::jit;
namespace backends = moat::backends;
namespace ir = moat::ir;

namespace {

// Runs `k` (one group, one item) on the CPU; returns the i32 buffer `out` of n values.
std::vector<int32_t> run(const Kernel& k, size_t n) {
  auto device = backends::open_cpu_device({.threads = 1});
  auto module = device->load(device->compile(backends::Artifact::text("ll", emit_llvm(k), {k.name})));
  auto out = device->allocate(n * 4);
  const std::vector<backends::KernelArg> args{backends::KernelArg::of(*out)};
  device->stream().launch(module->kernel(k.name), backends::Grid{}, args);
  std::vector<int32_t> result(n);
  device->stream().read(*out, 0, result.data(), n * 4);
  device->stream().synchronize();
  return result;
}

// Counts the binary nodes of each op and type of a kernel.
struct OpCounter : Visitor {
  int i64_divisions = 0, i32_divisions = 0, mulhi = 0, i64_other = 0;
  void visit_binary(const Node& n) override {
    const auto op = static_cast<BinaryOp>(n.op);
    const bool division = op == BinaryOp::div || op == BinaryOp::rem;
    if (division && n.type == kI64) ++i64_divisions;
    if (division && n.type == kI32) ++i32_divisions;
    if (op == BinaryOp::mulhi) ++mulhi;
    if (!division && n.type == kI64) ++i64_other;
    visit_children(n);
  }
};

OpCounter count_ops(const Kernel& k) {
  OpCounter c;
  c.visit(*k.body);
  return c;
}

// out[2 j n + (x - first)] = x / d_j, out[(2 j + 1) n + (x - first)] = x % d_j for x in
// [first, first + n): the counter's range is known from the loop's constant bounds.
Kernel divisions(const std::vector<int64_t>& divisors, int64_t first, int64_t n) {
  Kernel k;
  k.name = "divisions";
  const int out = k.add_buffer({"out", ir::DType::i32, Space::global, static_cast<int64_t>(2 * divisors.size()) * n, true});
  const NodeRef x = ref("x", kI64);
  const NodeRef slot = sub(x, c_i64(first));
  std::vector<NodeRef> body;
  for (size_t j = 0; j < divisors.size(); ++j) {
    const NodeRef d = c_i64(divisors[j]);
    body.push_back(store(k, out, add(slot, c_i64(static_cast<int64_t>(2 * j) * n)), cast(kI32, div(x, d))));
    body.push_back(store(k, out, add(slot, c_i64(static_cast<int64_t>(2 * j + 1) * n)), cast(kI32, rem(x, d))));
  }
  k.body = block({for_loop("x", c_i64(first), c_i64(first + n), c_i64(1), std::move(body))});
  return k;
}

std::vector<int64_t> test_divisors() {
  std::vector<int64_t> d;
  for (int64_t c = 1; c <= 130; ++c) d.push_back(c);
  for (int64_t c : std::initializer_list<int64_t>{17 * 2, 18, 34, 144, 176, 210, 576, 641, 1408, 2816, 10944, 90112, 102400, 65535, 65537, 1000003,
                    (int64_t{1} << 20) - 1, (int64_t{1} << 30) + 1, (int64_t{1} << 31) - 1})
    d.push_back(c);
  return d;
}

}  // namespace

TEST_CASE("divisions by constants become shifts and multiply-highs, exact from 0 to 2^31 - 1") {
  const std::vector<int64_t> divisors = test_divisors();
  const int64_t n = 2048;
  for (int64_t first : {int64_t{0}, int64_t{123456789}, (int64_t{1} << 31) - n}) {
    CAPTURE(first);
    const Kernel narrowed = narrow_index_arithmetic(divisions(divisors, first, n));
    const OpCounter ops = count_ops(narrowed);
    CHECK(ops.i64_divisions == 0);
    CHECK(ops.i32_divisions == 0);
    CHECK(ops.mulhi > 0);
    const std::vector<int32_t> out = run(narrowed, 2 * divisors.size() * static_cast<size_t>(n));
    int wrong = 0;
    for (size_t j = 0; j < divisors.size(); ++j)
      for (int64_t i = 0; i < n; ++i) {
        const int64_t x = first + i, d = divisors[j];
        const int64_t q = out[(2 * j) * static_cast<size_t>(n) + static_cast<size_t>(i)];
        const int64_t r = out[(2 * j + 1) * static_cast<size_t>(n) + static_cast<size_t>(i)];
        if ((q != x / d || r != x % d) && ++wrong <= 5) FAIL_CHECK(x, " / ", d, ": got ", q, " rem ", r);
      }
    CHECK(wrong == 0);
  }
}

TEST_CASE("index arithmetic that leaves i32 stays i64, and negative dividends keep truncating division") {
  Kernel k;
  k.name = "wide";
  const int64_t n = 64;
  const int out = k.add_buffer({"out", ir::DType::i32, Space::global, 3 * n, true});
  const NodeRef x = ref("x", kI64);
  // x * 100000000 reaches 6.3e9: i64 (and its division by 7 too); (x - 32) % 3 may be negative: i32
  const NodeRef wide = mul(x, c_i64(100000000));
  k.body = block({for_loop("x", c_i64(0), c_i64(n), c_i64(1),
                           {store(k, out, x, cast(kI32, rem(sub(x, c_i64(32)), c_i64(3)))),
                            store(k, out, add(x, c_i64(n)), cast(kI32, div(wide, c_i64(7)))),
                            store(k, out, add(x, c_i64(2 * n)), cast(kI32, div(wide, c_i64(1024 * 1024 * 1024))))})});
  const Kernel narrowed = narrow_index_arithmetic(k);
  const OpCounter ops = count_ops(narrowed);
  CHECK(ops.i64_divisions == 1);  // wide / 7: no multiplier is exact past 2^31
  CHECK(ops.i32_divisions == 1);  // (x - 32) % 3
  CHECK(ops.i64_other >= 2);      // wide itself, wide >> 30
  const std::vector<int32_t> got = run(narrowed, 3 * n);
  for (int64_t i = 0; i < n; ++i) {
    CAPTURE(i);
    CHECK(got[static_cast<size_t>(i)] == (i - 32) % 3);
    CHECK(got[static_cast<size_t>(n + i)] == static_cast<int32_t>(i * 100000000 / 7));
    CHECK(got[static_cast<size_t>(2 * n + i)] == static_cast<int32_t>(i * 100000000 / (1024 * 1024 * 1024)));
  }
}

TEST_CASE("ranges come from the launch grid, lets and narrow loads") {
  Kernel k;
  k.name = "grid";
  k.groups[0] = 1000;
  k.items[0] = 256;
  const int in = k.add_buffer({"in", ir::DType::u8, Space::global, 1000 * 256, false});
  const int out = k.add_buffer({"out", ir::DType::f32, Space::global, 1000 * 256, true});
  const NodeRef flat = ref("flat", kI64);
  const NodeRef byte = cast(kI64, load(k, in, flat));
  k.body = block({let("flat", add(mul(builtin(Builtin::group_id, 0), c_i64(256)), builtin(Builtin::item_id, 0))),
                  store(k, out, add(mul(div(flat, c_i64(10)), c_i64(7)), rem(byte, c_i64(5))), c_f32(0.0))});
  const OpCounter ops = count_ops(narrow_index_arithmetic(k));
  CHECK(ops.i64_divisions == 0);
  CHECK(ops.i32_divisions == 0);
  CHECK(ops.i64_other == 0);
  CHECK(ops.mulhi == 2);
}

TEST_CASE("a name bound again in a sibling scope takes its new range, and no i32 shift counts 32 or more") {
  Kernel k;
  k.name = "siblings";
  const int out = k.add_buffer({"out", ir::DType::i32, Space::global, 104, true});
  const NodeRef i = ref("i", kI64);
  const NodeRef scaled = mul(i, c_i64(4096));  // one node, in both loops
  k.body = block({for_loop("i", c_i64(0), c_i64(100), c_i64(1), {store(k, out, i, cast(kI32, binary(BinaryOp::shr, scaled, c_i64(12))))}),
                  for_loop("i", c_i64(0), c_i64(int64_t{1} << 40), c_i64(int64_t{1} << 39),
                           {store(k, out, add(c_i64(100), binary(BinaryOp::shr, i, c_i64(39))),
                                  cast(kI32, binary(BinaryOp::shr, scaled, c_i64(40))))}),
                  store(k, out, c_i64(102), cast(kI32, binary(BinaryOp::shr, c_i64(12345), c_i64(33)))),
                  store(k, out, c_i64(103), cast(kI32, binary(BinaryOp::shl, c_i64(0), c_i64(40))))});
  const Kernel narrowed = narrow_index_arithmetic(k);
  struct WideShifts : Visitor {
    int found = 0;
    void visit_binary(const Node& n) override {
      const auto op = static_cast<BinaryOp>(n.op);
      if ((op == BinaryOp::shl || op == BinaryOp::shr) && n.type == kI32 && n.args[1]->kind == NodeKind::constant &&
          n.args[1]->i >= 32)
        ++found;
      visit_children(n);
    }
  } shifts;
  shifts.visit(*narrowed.body);
  CHECK(shifts.found == 0);
  const std::vector<int32_t> got = run(narrowed, 104);
  for (int64_t x = 0; x < 100; ++x) CHECK(got[static_cast<size_t>(x)] == x);
  CHECK(got[100] == 0);
  CHECK(got[101] == 2048);  // (2^39 x 4096) >> 40: the second loop's i is not the first's [0, 99]
  CHECK(got[102] == 0);
  CHECK(got[103] == 0);
}
