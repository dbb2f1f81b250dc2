// The PTX emitter: the text's structure on a hand-built kernel, every Kernel IR node /
// type / conversion / dequant layout, and every kernel the lowering makes for the op
// families of the CPU conformance suite — under the PTX target's real schedules for
// sm_80 and sm_90 (jit/target.h) and under the CPU schedule — assembled by ptxas for
// sm_80 and sm_90. Nothing here runs PTX (no GPU): numerical behaviour is
// the emitter's contract (jit/emit_ptx_numeric.h), checked on a device when one is lent.
//
// ptxas runs through backends/cuda/ptx_check.h; tests that need it skip when it is absent.
#include <doctest/doctest.h>

#include <functional>
#include <optional>
#include <set>

#include "backends/cuda/ptx_check.h"
#include "ir/builder.h"
#include "jit/emit_ptx.h"
#include "jit/lower.h"
#include "jit/schedule.h"
#include "jit/target.h"
#include "support/error.h"
#include "tests/jit/conformance.h"

using namespace moat;
using namespace moat::jit;

namespace {

bool have_ptxas() { return backends::cuda::ptxas_available(); }

// "" when ptxas assembles `text` for `arch` (e.g. "sm_80"), else its output.
std::string assemble(const std::string& text, const std::string& arch) { return backends::cuda::check_ptx(text, arch); }

int count_of(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

const PtxTarget kTargets[] = {ptx_target_for(80), ptx_target_for(90)};

// Emits `k` for sm_80 and sm_90 and assembles both; returns how many assembled.
int check_kernel(const Kernel& k, const std::string& what) {
  int ok = 0;
  for (const PtxTarget& t : kTargets) {
    std::string text;
    try {
      text = emit_ptx(k, t);
    } catch (const std::exception& e) {
      FAIL_CHECK(what << ": kernel " << k.name << ": emit_ptx threw: " << e.what());
      continue;
    }
    const std::string arch = "sm_" + std::to_string(t.sm);
    const std::string errors = assemble(text, arch);
    if (errors.empty()) ++ok;
    else FAIL_CHECK(what << ": kernel " << k.name << " (" << arch << "):\n" << errors.substr(0, 2000));
  }
  return ok;
}

// A kernel with every parameter kind, a local buffer, a barrier, a sub-group reduction,
// if / else, a loop and a var.
Kernel structural_kernel() {
  Kernel k;
  k.name = "structural_test";
  int x = k.add_buffer({.name = "x", .dtype = ir::DType::f32, .elements = 256});
  int n = k.add_scalar({.name = "n", .scalar = Scalar::i64});
  int y = k.add_buffer({.name = "y", .dtype = ir::DType::f16, .elements = 256, .written = true});
  int scale = k.add_scalar({.name = "scale", .scalar = Scalar::f32});
  int tile = k.add_buffer({.name = "tile", .dtype = ir::DType::f32, .space = Space::local, .elements = 64});
  k.groups[0] = 4;
  k.items[0] = 64;
  NodeRef i = add(mul(builtin(Builtin::group_id, 0), builtin(Builtin::group_size, 0)), builtin(Builtin::item_id, 0));
  std::vector<NodeRef> body;
  body.push_back(let("i", i));
  body.push_back(store(k, tile, builtin(Builtin::item_id, 0), load(k, x, ref("i", kI64))));
  body.push_back(barrier());
  body.push_back(var("acc", c_f32(0.0)));
  body.push_back(for_loop("j", c_i64(0), c_i64(64), c_i64(1),
                          {assign("acc", fma(load(k, tile, ref("j", kI64)), scalar_arg(k, scale), ref("acc", kF32)))}));
  body.push_back(let("s", subgroup_reduce(ReduceOp::add, ref("acc", kF32))));
  body.push_back(if_then(lt(ref("i", kI64), scalar_arg(k, n)), {store(k, y, ref("i", kI64), cast({Scalar::f16, 1}, ref("s", kF32)))},
                         {store(k, y, ref("i", kI64), cast({Scalar::f16, 1}, c_f32(0.0)))}));
  k.body = block(std::move(body));
  return k;
}

}  // namespace

TEST_CASE("ptx: header, parameters in ABI order, shared memory, barrier, warp shuffles") {
  const Kernel k = structural_kernel();
  const std::string text = emit_ptx(k, ptx_target_for(80));
  CHECK(text.find(".version 7.0\n") != std::string::npos);
  CHECK(text.find(".target sm_80\n") != std::string::npos);
  CHECK(text.find(".address_size 64\n") != std::string::npos);
  CHECK(text.find(".visible .entry structural_test(\n"
                  "\t.param .u64 structural_test_param_0,\n"
                  "\t.param .u64 structural_test_param_1,\n"
                  "\t.param .u64 structural_test_param_2,\n"
                  "\t.param .f32 structural_test_param_3\n)") != std::string::npos);
  CHECK(text.find(".reqntid 64, 1, 1") != std::string::npos);
  CHECK(text.find(".shared .align 16 .b8 structural_test_local_2[256];") != std::string::npos);
  CHECK(count_of(text, "cvta.to.global.u64") == 2);
  CHECK(count_of(text, "bar.sync 0;") == 1);
  CHECK(count_of(text, "shfl.sync.bfly.b32") == 5);  // 32 lanes: offsets 16, 8, 4, 2, 1
  CHECK(text.find("%ctaid.x") != std::string::npos);
  CHECK(text.find("%ntid.x") != std::string::npos);
  CHECK(text.find("st.global.b16") != std::string::npos);
  CHECK(text.find("ld.shared.f32") != std::string::npos);
  CHECK(text.find("cvt.rn.f16.f32") != std::string::npos);

  const std::string sm90 = emit_ptx(k, ptx_target_for(90));
  CHECK(sm90.find(".version 7.8\n") != std::string::npos);
  CHECK(sm90.find(".target sm_90\n") != std::string::npos);
  if (!have_ptxas()) {
    MESSAGE("ptxas not found: assembling skipped");
    return;
  }
  CHECK(check_kernel(k, "structural") == 2);
}

TEST_CASE("ptx: a group smaller than a warp reduces over its power-of-two width") {
  Kernel k;
  k.name = "small_group";
  int y = k.add_buffer({.name = "y", .dtype = ir::DType::i64, .elements = 8, .written = true});
  k.items[0] = 8;
  k.body = block({store(k, y, builtin(Builtin::item_id, 0), subgroup_reduce(ReduceOp::max, builtin(Builtin::item_id, 0)))});
  const std::string text = emit_ptx(k, ptx_target_for(80));
  CHECK(count_of(text, "shfl.sync.bfly.b32") == 6);  // i64 in two halves x offsets 4, 2, 1
  CHECK(text.find(", 4, 31, 255;") != std::string::npos);
  if (have_ptxas()) CHECK(check_kernel(k, "small group") == 2);

  k.items[0] = 48;  // one and a half warps: no sub-group layout
  CHECK_THROWS_AS(emit_ptx(k, ptx_target_for(80)), InternalError);
}

TEST_CASE("ptx: unhandled nodes and targets fail loudly") {
  Kernel k;
  k.name = "bad";
  int x = k.add_buffer({.name = "x", .dtype = ir::DType::f16, .elements = 4, .written = true});
  // arithmetic on a storage type is not Kernel IR the printer can render
  k.body = block({store(k, x, c_i64(0), binary(BinaryOp::add, load(k, x, c_i64(1)), load(k, x, c_i64(2))))});
  try {
    emit_ptx(k, ptx_target_for(80));
    FAIL("no error");
  } catch (const InternalError& e) {
    CHECK(std::string(e.what()).find("ptx emitter") != std::string::npos);
    CHECK(std::string(e.what()).find("f16") != std::string::npos);
  }
  CHECK_THROWS_AS(ptx_target_for(70), UserError);
  Kernel bad_name = structural_kernel();
  bad_name.name = "9lives";
  CHECK_THROWS_AS(emit_ptx(bad_name, ptx_target_for(80)), InternalError);
}

TEST_CASE("ptx: every node, type, conversion, math function and dequant layout assembles") {
  if (!have_ptxas()) {
    MESSAGE("skipped: ptxas is not on PATH (install the CUDA toolkit to assemble PTX)");
    return;
  }
  const Scalar all[] = {Scalar::f32, Scalar::f16, Scalar::bf16, Scalar::f8, Scalar::i64, Scalar::i32, Scalar::i8, Scalar::u8};
  const ir::DType dtypes[] = {ir::DType::f32, ir::DType::f16, ir::DType::bf16, ir::DType::f8_e4m3,
                              ir::DType::i64, ir::DType::i32, ir::DType::i8,   ir::DType::u8};
  Kernel k;
  k.name = "every_node";
  k.items[0] = 32;
  std::vector<int> in, out;
  for (ir::DType d : dtypes) {
    in.push_back(k.add_buffer({.name = "in_" + std::string(ir::dtype_name(d)), .dtype = d, .elements = 64}));
    out.push_back(k.add_buffer({.name = "out_" + std::string(ir::dtype_name(d)), .dtype = d, .elements = 4096, .written = true}));
  }
  int flags = k.add_buffer({.name = "flags", .dtype = ir::DType::boolean, .elements = 64, .written = true});
  std::vector<int> quant;
  for (ir::DType d : {ir::DType::q8_0, ir::DType::q4_0, ir::DType::q4_k, ir::DType::q6_k})
    quant.push_back(k.add_buffer({.name = std::string(ir::dtype_name(d)), .dtype = d, .elements = 1024}));
  int f = k.add_scalar({.name = "f", .scalar = Scalar::f32});
  NodeRef tid = builtin(Builtin::item_id, 0);
  std::vector<NodeRef> body;
  int slot = 0;
  auto put = [&](size_t type_index, NodeRef v) { body.push_back(store(k, out[type_index], c_i64(slot++), std::move(v))); };
  // every conversion between every pair, from loaded values and from constants
  for (size_t a = 0; a < std::size(all); ++a) {
    NodeRef v = load(k, in[a], tid);
    for (size_t c = 0; c < std::size(all); ++c) {
      put(c, cast({all[c], 1}, v));
      put(c, cast({all[c], 1}, constant({all[a], 1}, -3.75)));
    }
    body.push_back(store(k, flags, tid, cast(kBool, v)));
    put(a, cast({all[a], 1}, load(k, flags, tid)));
    put(a, select(lt(builtin(Builtin::item_id, 0), c_i64(3)), v, load(k, in[a], c_i64(5))));
  }
  // arithmetic on every computational type
  for (size_t a : {size_t{0}, size_t{4}, size_t{5}, size_t{6}, size_t{7}}) {
    NodeRef x = load(k, in[a], tid), y = load(k, in[a], add(tid, c_i64(1)));
    for (BinaryOp op : {BinaryOp::add, BinaryOp::sub, BinaryOp::mul, BinaryOp::div, BinaryOp::rem, BinaryOp::min, BinaryOp::max})
      put(a, binary(op, x, y));
    for (BinaryOp op : {BinaryOp::lt, BinaryOp::le, BinaryOp::eq, BinaryOp::ne})
      body.push_back(store(k, flags, tid, binary(op, x, y)));
    put(a, unary(UnaryOp::neg, x));
    put(a, unary(UnaryOp::abs, x));
    if (a == 0) continue;
    for (BinaryOp op : {BinaryOp::land, BinaryOp::lor, BinaryOp::shl, BinaryOp::shr}) put(a, binary(op, x, y));
    put(a, subgroup_reduce(ReduceOp::add, x));
  }
  NodeRef x = load(k, in[0], tid);
  for (UnaryOp op : {UnaryOp::exp, UnaryOp::log, UnaryOp::sqrt, UnaryOp::rsqrt, UnaryOp::recip, UnaryOp::sin, UnaryOp::cos, UnaryOp::tanh})
    put(0, unary(op, x));
  put(0, binary(BinaryOp::pow, x, scalar_arg(k, f)));
  put(0, fma(x, scalar_arg(k, f), x));
  for (ReduceOp op : {ReduceOp::add, ReduceOp::max, ReduceOp::min}) put(0, subgroup_reduce(op, x));
  NodeRef p = binary(BinaryOp::lt, x, c_f32(0.5));
  NodeRef q = unary(UnaryOp::isnan, x);
  for (BinaryOp op : {BinaryOp::land, BinaryOp::lor, BinaryOp::eq, BinaryOp::ne, BinaryOp::lt, BinaryOp::le, BinaryOp::add, BinaryOp::max})
    body.push_back(store(k, flags, tid, binary(op, p, q)));
  body.push_back(store(k, flags, tid, select(p, unary(UnaryOp::lnot, q), q)));
  body.push_back(store(k, flags, tid, subgroup_reduce(ReduceOp::max, p)));
  // one element and 32 (scalarised) of every quantised layout
  for (int qb : quant) {
    put(0, dequant(k, qb, c_i64(1), tid, 1));
    body.push_back(let("chunk" + std::to_string(qb), dequant(k, qb, c_i64(0), c_i64(0), 32)));
    put(0, reduce(ReduceOp::add, ref("chunk" + std::to_string(qb), kF32.with_lanes(32))));
  }
  k.body = block(std::move(body));
  CHECK(check_kernel(k, "every node") == 2);
}

namespace {

// Representative graphs of every op family of tests/jit/cpu_conformance_test.cpp.
struct Case {
  std::string name;
  std::function<void(ir::Builder&)> build;
  ir::SymbolValues symbols;
};

using ir::DType;
using ir::Op;
using moat::testing::tensor_type;

std::vector<Case> conformance_cases() {
  std::vector<Case> cases;
  auto add = [&](std::string name, std::function<void(ir::Builder&)> build, ir::SymbolValues symbols = {}) {
    cases.push_back({std::move(name), std::move(build), std::move(symbols)});
  };
  for (Op op : {Op::neg, Op::abs, Op::exp, Op::log, Op::sqrt, Op::rsqrt, Op::recip, Op::sin, Op::cos, Op::tanh, Op::sigmoid, Op::silu})
    for (DType d : {DType::f32, DType::f16, DType::bf16})
      add(std::string(ir::op_name(op)) + " " + std::string(ir::dtype_name(d)),
          [op, d](ir::Builder& b) { b.output(b.unary(op, b.input("x", tensor_type(d, {3, 70})))); });
  for (DType d : {DType::i32, DType::i64, DType::i8})
    for (Op op : {Op::neg, Op::abs})
      add(std::string(ir::op_name(op)) + " " + std::string(ir::dtype_name(d)),
          [op, d](ir::Builder& b) { b.output(b.unary(op, b.input("x", tensor_type(d, {5, 9})))); });
  for (Op op : {Op::add, Op::sub, Op::mul, Op::div, Op::max, Op::min, Op::pow, Op::cmp_lt, Op::cmp_le, Op::cmp_eq})
    for (DType d : {DType::f32, DType::f16, DType::bf16, DType::i32, DType::i64}) {
      if (op == Op::pow && !ir::is_float(d)) continue;
      add(std::string(ir::op_name(op)) + " " + std::string(ir::dtype_name(d)), [op, d](ir::Builder& b) {
        ir::NodeId rhs = b.input("b", tensor_type(d, {2, 1}));
        if (op == Op::div && !ir::is_float(d)) rhs = b.add(b.unary(Op::abs, rhs), b.scalar(d, 1));
        b.output(b.binary(op, b.input("a", tensor_type(d, {2, 17})), rhs));
      });
    }
  add("select", [](ir::Builder& b) {
    b.output(b.select(b.input("c", tensor_type(DType::boolean, {4, 5})), b.input("a", tensor_type(DType::f32, {4, 5})),
                      b.input("b", tensor_type(DType::f32, {5}))));
  });
  const DType plain[] = {DType::f32, DType::f16, DType::bf16, DType::f8_e4m3, DType::i64, DType::i32, DType::i8, DType::u8, DType::boolean};
  for (DType from : plain)
    for (DType to : plain)
      add("cast " + std::string(ir::dtype_name(from)) + " -> " + std::string(ir::dtype_name(to)),
          [from, to](ir::Builder& b) { b.output(b.cast(b.input("x", tensor_type(from, {41})), to)); });
  for (Op op : {Op::reduce_sum, Op::reduce_max})
    for (DType d : {DType::f32, DType::f16, DType::i32})
      for (int64_t axis : {0, 1, 2})
        add(std::string(ir::op_name(op)) + " " + std::string(ir::dtype_name(d)) + " axis " + std::to_string(axis),
            [op, d, axis](ir::Builder& b) { b.output(b.reduce(op, b.input("x", tensor_type(d, {3, 50, 7})), axis)); });
  for (DType bd : {DType::f32, DType::f16, DType::bf16})
    for (bool transposed : {true, false})
      for (auto mkn : std::vector<std::array<int64_t, 3>>{{1, 64, 64}, {3, 37, 17}, {9, 1024, 40}})
        add("matmul " + std::string(ir::dtype_name(bd)) + (transposed ? " t" : " n") + " m" + std::to_string(mkn[0]),
            [bd, transposed, mkn](ir::Builder& b) {
              const int64_t m = mkn[0], k = mkn[1], n = mkn[2];
              ir::NodeId a = b.input("a", tensor_type(DType::f32, {m, k}));
              ir::NodeId w = b.input("w", tensor_type(bd, transposed ? std::vector<int64_t>{n, k} : std::vector<int64_t>{k, n}));
              b.output(b.matmul(a, w, transposed));
            });
  add("batched matmul", [](ir::Builder& b) {
    b.output(b.matmul(b.input("a", tensor_type(DType::f32, {2, 3, 4, 16})), b.input("b", tensor_type(DType::f32, {3, 5, 16})), true));
  });
  for (DType bd : {DType::q8_0, DType::q4_0, DType::q4_k, DType::q6_k})
    for (auto mn : std::vector<std::pair<int64_t, int64_t>>{{1, 37}, {6, 7}})
      add("matmul " + std::string(ir::dtype_name(bd)) + " m" + std::to_string(mn.first), [bd, mn](ir::Builder& b) {
        const int64_t k = 2 * ir::dtype_block_elems(bd);
        b.output(b.matmul(b.input("a", tensor_type(DType::f32, {mn.first, k})), b.input("w", tensor_type(bd, {mn.second, k})), true));
      });
  for (auto mnk : std::vector<std::array<int64_t, 3>>{{1, 130, 256}, {2, 7, 100}})
    add("matmul fp8 n" + std::to_string(mnk[1]), [mnk](ir::Builder& b) {
      const int64_t m = mnk[0], n = mnk[1], k = mnk[2];
      ir::NodeId a = b.input("a", tensor_type(DType::f32, {m, k}));
      ir::NodeId w = b.input("w", tensor_type(DType::f8_e4m3, {n, k}));
      ir::NodeId s = b.input("s", tensor_type(DType::f32, {(n + 127) / 128, (k + 127) / 128}));
      b.output(b.matmul_fp8(a, w, s));
    });
  for (DType d : {DType::f32, DType::f16, DType::q8_0, DType::q4_k})
    add("gather " + std::string(ir::dtype_name(d)), [d](ir::Builder& b) {
      const int64_t cols = d == DType::q4_k ? 256 : 64;
      ir::NodeId table = b.input("table", tensor_type(d, {10, cols}));
      b.output(b.cast(b.gather(table, b.input("idx", tensor_type(DType::i32, {3, 2}))), DType::f32));
    });
  add("take_along", [](ir::Builder& b) {
    b.output(b.take_along(b.input("x", tensor_type(DType::f32, {4, 9})), b.input("idx", tensor_type(DType::i64, {4, 3}))));
  });
  for (int64_t k : {1, 6})
    add("topk " + std::to_string(k), [k](ir::Builder& b) { b.output(b.topk(b.input("x", tensor_type(DType::f32, {5, 40})), k)); });
  add("views", [](ir::Builder& b) {
    ir::NodeId p = b.permute(b.input("x", tensor_type(DType::f32, {4, 6, 10})), {2, 0, 1});
    ir::NodeId s = b.slice(p, 0, 3, 9);
    ir::NodeId c = b.concat({b.reshape(s, {ir::Dim::of(24), ir::Dim::of(6)}), b.input("y", tensor_type(DType::f32, {24, 2}))}, 1);
    b.output(b.mul(c, b.scalar(DType::f32, 2.0)));
    b.output(b.broadcast(b.input("z", tensor_type(DType::f16, {3, 1})), ir::static_shape({4, 3, 5})));
  });
  add("sources", [](ir::Builder& b) {
    ir::NodeId x = b.input("x", tensor_type(DType::f32, {2, 3}));
    ir::NodeId c = b.constant(tensor_type(DType::f32, {2, 3}), {1, 2, 3, 4, 5, 6});
    b.output(b.add(b.add(x, c), b.cast(b.iota(DType::i32, ir::Dim::of(3)), DType::f32)));
    b.output(x);
    b.output(b.scalar(DType::f16, 0.1));
  });
  add("symbolic T", [](ir::Builder& b) {
    ir::Dim t = b.symbol("T");
    b.output(b.softmax(b.matmul(b.input("x", ir::TensorType{DType::f32, {t, ir::Dim::of(48)}}),
                                b.input("w", tensor_type(DType::f32, {20, 48})), true)));
  }, {{"T", 7}});
  add("rms_norm", [](ir::Builder& b) {
    b.output(b.rms_norm(b.input("x", tensor_type(DType::f16, {3, 40})), b.input("w", tensor_type(DType::f32, {40})), 1e-5));
  });
  for (bool interleaved : {true, false})
    add(std::string("rope ") + (interleaved ? "interleaved yarn" : "neox"), [interleaved](ir::Builder& b) {
      ir::RopeParams p;
      p.n_dims = 8;
      p.interleaved = interleaved;
      p.ext_factor = interleaved ? 1.0 : 0.0;
      p.freq_scale = interleaved ? 0.25 : 1.0;
      p.orig_ctx = 64;
      b.output(b.rope(b.input("x", tensor_type(DType::f32, {4, 2, 16})), b.input("pos", tensor_type(DType::i32, {4})), p));
    });
  add("attention", [](ir::Builder& b) {
    b.output(b.attention(b.input("q", tensor_type(DType::f32, {3, 4, 16})), b.input("k", tensor_type(DType::f32, {5, 2, 16})),
                         b.input("v", tensor_type(DType::f32, {5, 2, 8})), b.input("pos", tensor_type(DType::i32, {3})), 0.25, true));
  });
  for (const char* method : {"greedy", "group_limited_greedy", "noaux_tc"})
    for (DType wd : {DType::f32, DType::q8_0})
      add(std::string("moe ") + method + " " + std::string(ir::dtype_name(wd)), [method, wd](ir::Builder& b) {
        const int64_t t = 3, d = 32, f = 32, e = 8;
        ir::NodeId x = b.input("x", tensor_type(DType::f32, {t, d}));
        ir::NodeId router = b.input("router", tensor_type(DType::f32, {e, d}));
        ir::NodeId gate = b.input("gate", tensor_type(wd, {e, f, d}));
        ir::NodeId up = b.input("up", tensor_type(wd, {e, f, d}));
        ir::NodeId down = b.input("down", tensor_type(wd, {e, d, f}));
        std::optional<ir::NodeId> bias;
        ir::MoeParams p;
        p.n_used = 3;
        p.method = method;
        p.n_groups = 4;
        p.topk_groups = 2;
        p.norm_topk = true;
        p.scale = 2.5;
        if (std::string(method) == "noaux_tc") {
          bias = b.input("bias", tensor_type(DType::f32, {e}));
          p.scoring = "sigmoid";
        }
        b.output(b.moe(x, router, gate, up, down, bias, p));
      });
  return cases;
}

// Lowers every case under the PTX target's real default schedule for each of sm_80 and
// sm_90 (jit/target.h: that architecture's capabilities) — or under `fixed`, when given,
// for both — and assembles each distinct kernel for that architecture; returns
// {kernels, kernels assembled}.
std::pair<int, int> check_lowered(const std::optional<Schedule>& fixed, const std::string& label) {
  int kernels = 0, assembled = 0;
  const Target& ptx = target_named("ptx");
  for (const char* arch : {"sm_80", "sm_90"}) {
    const Capabilities& caps = capabilities_of(ptx, arch);
    const Schedule schedule = fixed ? *fixed : schedule_for(ptx, caps);
    for (const Case& c : conformance_cases()) {
      ir::Graph g;
      ir::Builder b(g);
      c.build(b);
      Plan plan = lower(g, c.symbols, schedule);
      std::set<std::string> seen;
      for (const PlanKernel& pk : plan.kernels) {
        if (!seen.insert(pk.kernel.name).second) continue;
        ++kernels;
        const std::string errors = assemble(ptx.print(pk.kernel, caps), arch);
        if (errors.empty()) ++assembled;
        else FAIL_CHECK(label << " " << c.name << ": kernel " << pk.kernel.name << " (" << arch << "):\n" << errors.substr(0, 2000));
      }
    }
  }
  return {kernels, assembled};
}

}  // namespace

TEST_CASE("ptx: every kernel of the conformance op families, under the real sm_80 / sm_90 schedules, assembles") {
  if (!have_ptxas()) {
    MESSAGE("skipped: ptxas is not on PATH (install the CUDA toolkit to assemble PTX)");
    return;
  }
  const Schedule sm80 = schedule_for(target_named("ptx"), capabilities_of(target_named("ptx"), "sm_80"));
  CHECK(sm80.gpu);
  CHECK(sm80.work_group_size == 256);  // what a CUDA device runs
  auto [kernels, assembled] = check_lowered(std::nullopt, "gpu");
  MESSAGE("gpu schedule: ", assembled, " of ", kernels, " kernels assembled (sm_80 and sm_90 schedules)");
  CHECK(kernels > 200);
  CHECK(assembled == kernels);
}

TEST_CASE("ptx: every kernel of the conformance op families, CPU schedule (vectors scalarised), assembles") {
  if (!have_ptxas()) {
    MESSAGE("skipped: ptxas is not on PATH (install the CUDA toolkit to assemble PTX)");
    return;
  }
  const Target& cpu = target_named("llvm-cpu");
  const Schedule s = schedule_for(cpu, capabilities_of(cpu));  // 16-lane vectors, 32-lane dequant chunks
  auto [kernels, assembled] = check_lowered(s, "cpu");
  MESSAGE("cpu schedule: ", assembled, " of ", kernels, " kernels assembled for sm_80 and sm_90");
  CHECK(kernels > 200);
  CHECK(assembled == kernels);
}
