#include <doctest/doctest.h>

#include <limits>
#include <set>

#include "ir/builder.h"
#include "ir/text.h"
#include "ir/verify.h"
#include "support/error.h"

using namespace moat::ir;
using moat::UserError;

namespace {

// A graph that uses every op of the IR at least once.
Graph every_op_graph() {
  Graph g;
  g.name = "every_op";
  Builder b(g);
  Dim t = b.symbol("T");
  Dim s = b.symbol("S");
  NodeId x = b.input("x", {DType::f32, {t, Dim::of(64)}});
  NodeId pos = b.input("pos", {DType::i32, {t}});
  NodeId w8 = b.param("w.q8_0", {DType::q8_0, static_shape({32, 64})});
  NodeId w4 = b.param("w.q4_0", {DType::q4_0, static_shape({32, 64})});
  NodeId wk = b.param("w.q4_k", {DType::q4_k, static_shape({4, 256})});
  NodeId w6 = b.param("w.q6_k", {DType::q6_k, static_shape({4, 256})});
  NodeId wf8 = b.param("w.fp8", {DType::f8_e4m3, static_shape({32, 64})});
  NodeId wf8s = b.param("w.fp8.scale_inv", {DType::f32, static_shape({1, 1})});
  NodeId norm_w = b.param("norm", {DType::f32, static_shape({64})});
  NodeId emb = b.param("emb", {DType::bf16, static_shape({100, 64})});
  NodeId tok = b.input("tokens", {DType::i64, {t}});

  NodeId e = b.cast(b.gather(emb, tok), DType::f32);
  NodeId h = b.rms_norm(b.add(x, e), norm_w, 1e-6);
  NodeId y8 = b.matmul(h, w8);
  NodeId y4 = b.matmul(h, w4);
  NodeId yf8 = b.matmul_fp8(h, wf8, wf8s);
  NodeId y = b.concat({y8, y4, yf8}, -1);  // [T, 96]
  NodeId wide = b.concat({h, h, h, h}, 1);  // [T, 256]
  NodeId yk = b.matmul(wide, wk);
  NodeId y6 = b.matmul(wide, w6);
  NodeId ykk = b.add(yk, y6);  // [T, 4]
  NodeId u = y;
  for (Op op : {Op::neg, Op::abs, Op::exp, Op::log, Op::sqrt, Op::rsqrt, Op::recip, Op::sin, Op::cos, Op::tanh,
                Op::sigmoid, Op::silu})
    u = b.unary(op, u);
  for (Op op : {Op::sub, Op::mul, Op::div, Op::max, Op::min, Op::pow}) u = b.binary(op, u, y);
  NodeId less = b.binary(Op::cmp_lt, u, y);
  NodeId le = b.binary(Op::cmp_le, u, y);
  NodeId eq = b.binary(Op::cmp_eq, u, y);
  NodeId sel = b.select(less, b.select(le, u, y), b.select(eq, y, u));
  NodeId r = b.add(b.reduce(Op::reduce_sum, sel, -1), b.reduce(Op::reduce_max, sel, 1));  // [T, 1]
  NodeId sm = b.softmax(b.mul(sel, r));
  NodeId top = b.topk(sm, 4);
  NodeId vals = b.take_along(sm, top);  // [T, 4]
  NodeId heads = b.reshape(b.slice(sel, 1, 0, 64), {t, Dim::of(4), Dim::of(16)});
  NodeId roped = b.rope(heads, pos, RopeParams{.n_dims = 8, .theta = 10000.0, .interleaved = true,
                                               .freq_scale = 0.25, .ext_factor = 1.0, .attn_factor = 1.0,
                                               .beta_fast = 32.0, .beta_slow = 1.0, .orig_ctx = 4096});
  NodeId k = b.input("k", {DType::f32, {s, Dim::of(2), Dim::of(16)}});
  NodeId v = b.input("v", {DType::f32, {s, Dim::of(2), Dim::of(8)}});
  NodeId kw = b.write_rows(k, b.slice(heads, 1, 0, 2), pos);  // [S, 2, 16]
  NodeId att = b.attention(roped, kw, v, pos, 0.25, true);  // [T, 4, 8]
  NodeId flat = b.reshape(b.permute(att, {1, 0, 2}), {Dim::of(4), t, Dim::of(8)});
  NodeId bc = b.broadcast(b.iota(DType::f32, Dim::of(8)), {Dim::of(4), t, Dim::of(8)});
  NodeId mixed = b.add(flat, bc);
  NodeId router = b.param("router", {DType::f32, static_shape({8, 64})});
  NodeId gate = b.param("gate", {DType::q8_0, static_shape({8, 32, 64})});
  NodeId up = b.param("up", {DType::q8_0, static_shape({8, 32, 64})});
  NodeId down = b.param("down", {DType::f16, static_shape({8, 64, 32})});
  NodeId bias = b.param("bias", {DType::f32, static_shape({8})});
  NodeId moe = b.moe(h, router, gate, up, down, bias,
                     MoeParams{.n_used = 2, .scoring = "sigmoid", .method = "noaux_tc", .n_groups = 4,
                               .topk_groups = 2, .norm_topk = true, .scale = 2.5});
  NodeId c = b.constant({DType::f32, static_shape({2})}, {0.5, -1e-30});
  b.output(vals);
  b.output(mixed);
  b.output(moe);
  b.output(ykk);
  b.output(c);
  b.output(b.cast(b.topk(sm, 1), DType::i64));
  b.output(b.kth_largest(sm, 2));
  return g;
}

}  // namespace

TEST_CASE("a graph using every op round-trips through text") {
  Graph g = every_op_graph();
  std::set<Op> used;
  for (const Node& n : g.nodes) used.insert(n.op);
  CHECK(used.size() == static_cast<size_t>(Op::moe) + 1);  // every op of the X-macro appears

  std::string text = print(g);
  Graph back = parse(text, "every_op.mir");
  CHECK(print(back) == text);
  REQUIRE(back.nodes.size() == g.nodes.size());
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    CHECK(back.nodes[i].op == g.nodes[i].op);
    CHECK(back.nodes[i].type == g.nodes[i].type);
    CHECK(back.nodes[i].attrs == g.nodes[i].attrs);
    CHECK(back.nodes[i].operands == g.nodes[i].operands);
  }
  CHECK(back.outputs == g.outputs);
  CHECK(back.symbols == g.symbols);
}

TEST_CASE("floats, special values and strings survive the text form exactly") {
  Graph g;
  Builder b(g);
  NodeId c = b.constant({DType::f32, static_shape({6})},
                        {2.0, 0.1, -1e-300, 1.0 / 3.0, std::numeric_limits<double>::infinity(),
                         -std::numeric_limits<double>::infinity()});
  NodeId named = b.input("we\"ird\\name\n\x01", {DType::f32, static_shape({6})});
  b.output(b.add(c, named));
  Graph back = parse(print(g), "floats.mir");
  CHECK(back.nodes[0].attrs == g.nodes[0].attrs);
  CHECK(attr_string(back.nodes[1], "name") == "we\"ird\\name\n\x01");
  CHECK(print(g).find("[2.0, 0.1,") != std::string::npos);
}

TEST_CASE("hand-written text is accepted with comments and integer floats") {
  const char* text = R"(// a hand-written graph
graph g(T) {
  %0 = input() {name = "x"} : f32[T, 4]   // activations
  %1 = constant() {value = [1, 2, 3, 4]} : f32[4]
  %2 = rms_norm(%0, %1) {eps = 0} : f32[T, 4]
  return %2
})";
  Graph g = parse(text, "hand.mir");
  CHECK(g.nodes.size() == 3);
  CHECK(attr_float(g.nodes[2], "eps") == 0.0);
  CHECK(attr_floats(g.nodes[1], "value") == std::vector<double>{1, 2, 3, 4});
}

TEST_CASE("parse errors name the source, line and column") {
  auto message = [](const char* text) {
    try {
      parse(text, "bad.mir");
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  CHECK(message("graph g() {\n  %0 = frobnicate() : f32[1]\n  return %0\n}") ==
        "bad.mir:2:8: unknown op frobnicate");
  CHECK(message("graph g() {\n  %1 = input() {name = \"x\"} : f32[1]\n  return %1\n}").find("bad.mir:2:") == 0);
  CHECK(message("graph g() {\n  %0 = input() {name = \"x\"} : f32[T]\n  return %0\n}").find("symbol T is not declared") !=
        std::string::npos);
  CHECK(message("graph g() {\n  %0 = input() {name = \"x\"} : f99[1]\n  return %0\n}").find("unknown dtype f99") !=
        std::string::npos);
  CHECK(message("graph g() {\n  %0 = input() {name = \"x\"} : f32[1]\n  return %3\n}").find("used before it is defined") !=
        std::string::npos);
  CHECK(message("graph g() {\n  %0 = input() {name = \"x\" : f32[1]\n}").find("bad.mir:2:") == 0);
  CHECK(message("graph g() {\n  %0 = input() {name = \"x\"} : f32[1]\n  return %0\n} trailing").find("unexpected text") !=
        std::string::npos);
  CHECK(message("").find("bad.mir:1:1: expected 'graph'") == 0);
}

TEST_CASE("the verifier names the node and the mismatch") {
  auto message = [](const char* text) {
    try {
      parse(text, "v.mir");
    } catch (const UserError& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  // Stored type disagrees with the inferred one.
  CHECK(message("graph g() {\n %0 = input() {name = \"x\"} : f32[2, 3]\n %1 = exp(%0) : f32[3, 2]\n return %1\n}") ==
        "v.mir: graph g: %1 (exp): result type is f32[3, 2] but the operands give f32[2, 3]");
  // Matmul inner dimensions.
  CHECK(message("graph g() {\n %0 = input() {name = \"a\"} : f32[2, 3]\n %1 = param() {name = \"b\"} : q8_0[4, 64]\n"
                " %2 = matmul(%0, %1) {b_transposed = true} : f32[2, 4]\n return %2\n}")
            .find("%2 (matmul): inner dimensions differ") != std::string::npos);
  // Missing and unknown attributes.
  CHECK(message("graph g() {\n %0 = input() {name = \"x\"} : f32[2]\n %1 = topk(%0) : i32[1]\n return %1\n}")
            .find("%1 (topk): missing attribute k") != std::string::npos);
  CHECK(message("graph g() {\n %0 = input() {name = \"x\", color = 3} : f32[2]\n return %0\n}")
            .find("%0 (input): unknown attribute color") != std::string::npos);
  CHECK(message("graph g() {\n %0 = input() {name = 3} : f32[2]\n return %0\n}")
            .find("attribute name must be a string, got a int") != std::string::npos);
  CHECK(message("graph g() {\n %0 = input() {name = \"x\"} : f32[2]\n return\n}").find("has no outputs") !=
        std::string::npos);
}

TEST_CASE("the builder rejects ill-typed nodes at the point they are made") {
  Graph g;
  Builder b(g);
  NodeId x = b.input("x", {DType::f32, static_shape({2, 3})});
  NodeId i = b.input("i", {DType::i32, static_shape({2, 3})});
  CHECK_THROWS_WITH_AS(b.add(x, i), "graph main: %2 (add): operand dtypes differ: f32 and i32", UserError);
  CHECK_THROWS_AS(b.reshape(x, static_shape({4})), UserError);
  CHECK_THROWS_AS(b.slice(x, 1, 2, 5), UserError);
  CHECK_THROWS_AS(b.permute(x, {0, 0}), UserError);
  CHECK_THROWS_AS(b.reduce(Op::reduce_sum, x, 2), UserError);
  CHECK_THROWS_AS(b.topk(x, 4), UserError);
  NodeId q = b.param("q", {DType::q4_0, static_shape({3, 32})});
  CHECK_THROWS_AS(b.matmul(x, q, false), UserError);
  CHECK_THROWS_AS(b.unary(Op::exp, q), UserError);
  CHECK(g.nodes.size() == 3);  // rejected nodes are not appended
}
