// Streaming attention (the `attention` composite lowered directly, never expanded in a
// kernel plan): online softmax over blocks of keys, split over the key axis
// (flash-decoding), so no [T, H, S] score matrix exists and the number of keys a query
// reads is a run-time value: a causal query at position p reads keys 0..min(S, p + 1) - 1
// (from its key start instead of 0 when the node has them: several sequences' rows in
// one cache), so one plan serves every cache length up to S. A key bias [T, S] (sparse
// attention's selection, 0 or -inf) is added to each score as it is computed.
//
//   partial kernel  one work-group per (query t, split s); for each block of `block`
//                   keys of the split's range, its work-items take heads h = item,
//                   item + items, ...: scores into a scratch row, the head's running max
//                   m and sum l (rescaled once per block), acc[Dv] += p_j * v_j.
//   combine kernel  out[t, h] = sum_s exp(m_s - M) acc_s / sum_s exp(m_s - M) l_s.
//
// With one split, the partial kernel accumulates straight into the output and divides
// by l at the end (no combine). Operands q, k, v are read as strided views of their
// buffers (a slice of the cache, e.g. the absorbed form's values, is read in place).
#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>

#include "ir/tensor.h"
#include "jit/lower_kernels.h"
#include "support/error.h"

namespace moat::jit {

namespace {

// A node read in place: element [i0, i1, i2] at offset + sum(i_d * strides[d]).
struct StridedView {
  int buffer = -1;
  int64_t offset = 0;            // elements
  std::vector<int64_t> strides;  // elements, per dimension of the node's shape
};

std::vector<int64_t> row_major_strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (size_t d = shape.size(); d-- > 1;) s[d - 1] = s[d] * shape[d];
  return s;
}

std::optional<StridedView> strided_view(const LowerContext& ctx, ir::NodeId id) {
  const int buffer = ctx.buffer_of[static_cast<size_t>(id)];
  if (buffer >= 0) return StridedView{buffer, 0, row_major_strides(ctx.shape(id))};
  const ir::Node& node = ctx.node(id);
  if (node.op != ir::Op::slice) return std::nullopt;
  std::optional<StridedView> v = strided_view(ctx, node.operands[0]);
  if (!v) return std::nullopt;
  int64_t axis = ir::attr_int(node, "axis");
  if (axis < 0) axis += static_cast<int64_t>(v->strides.size());
  v->offset += ir::attr_int(node, "start") * v->strides[static_cast<size_t>(axis)];
  return v;
}

// The largest power of two <= `cap` that divides n.
int64_t lanes_for(int64_t n, int64_t cap) {
  int64_t lanes = 1;
  while (lanes * 2 <= cap && n % (lanes * 2) == 0) lanes *= 2;
  return lanes;
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

constexpr double kNegInf = -std::numeric_limits<double>::infinity();

struct AttentionShape {
  int64_t T, H, S, Hkv, Dk, Dv;
  int64_t group() const { return H / Hkv; }
};

// Splits of the key axis: enough work-groups to occupy the device when there are few
// queries (decode), one split when the queries alone are many (prefill).
int64_t key_splits(const Schedule& s, const AttentionShape& a) {
  const int64_t wanted = s.gpu ? 128 : 16;  // work-groups worth filling a GPU / the CPU threads
  return std::clamp<int64_t>(ceil_div(wanted, a.T), 1, s.gpu ? 64 : 16);
}

// The fewest keys a split takes (the key count is known only at run time): on the CPU,
// enough for about 32k multiply-adds over the heads, so that a short context (a small
// model's first hundred tokens) runs in a split or two, not sixteen of a few keys each,
// every one paying its setup and the combine its partial results. GPUs: any (occupancy).
int64_t min_split_keys(const Schedule& s, const AttentionShape& a) {
  constexpr int64_t kMinSplitWork = 32768;  // multiply-adds
  if (s.gpu) return 1;
  return std::max<int64_t>(1, ceil_div(kMinSplitWork, a.H * (a.Dk + a.Dv)));
}

// `lanes` consecutive elements from element `index` as f32; a block-quantised buffer is
// decoded (32 lanes, `index` a multiple of 32).
NodeRef f32_load(Kernel& k, int buffer, NodeRef index, int64_t lanes) {
  if (ir::is_quantised(k.buffers[static_cast<size_t>(buffer)].dtype))
    return dequant(k, buffer, idiv(index, 32), c_i64(0), static_cast<int>(lanes));
  NodeRef v = load(k, buffer, std::move(index), static_cast<int>(lanes));
  return v->type.scalar == Scalar::f32 ? v : cast(kF32.with_lanes(static_cast<int>(lanes)), v);
}

}  // namespace

std::vector<int> attention_contiguous_operands(const ir::Graph& g, ir::NodeId id) {
  std::vector<int> bases;
  const ir::Node& node = g.node(id);
  for (int i = 0; i < 3; ++i) {
    ir::NodeId o = node.operands[static_cast<size_t>(i)];
    while (g.node(o).op == ir::Op::slice) o = g.node(o).operands[0];
    bases.push_back(o);
  }
  return bases;
}

namespace {

// What both kernels of one attention node share: its shape, operand views, schedule
// parameters and scratch buffers.
struct AttentionPlan {
  const ir::Node& node;
  int out = -1;
  AttentionShape a{};
  double scale = 1;
  bool causal = true;
  std::optional<StridedView> qv, kv, vv;
  int64_t splits = 1, items = 1, block = 16, lk = 1, lv = 1;  // lk / lv: f32 lanes of q.k / of v
  int64_t tile = 1;  // heads of one key/value head that take each loaded key and value chunk
  bool direct = false;  // one split, f32 output: accumulate into the output, no combine
  int scores_buf = -1, acc_buf = -1, stats_buf = -1;
};

AttentionPlan plan_attention(LowerContext& ctx, ir::NodeId id, int out) {
  const ir::Node& node = ctx.node(id);
  const std::vector<int64_t>& qs = ctx.shape(node.operands[0]);
  const std::vector<int64_t>& ks = ctx.shape(node.operands[1]);
  const std::vector<int64_t>& vs = ctx.shape(node.operands[2]);
  const AttentionShape a{qs[0], qs[1], ks[0], ks[1], qs[2], vs[2]};
  const double scale = ir::attr_float(node, "scale");
  const bool causal = ir::attr_bool(node, "causal");
  const Schedule& s = ctx.schedule;
  std::optional<StridedView> qv = strided_view(ctx, node.operands[0]), kv = strided_view(ctx, node.operands[1]),
                             vv = strided_view(ctx, node.operands[2]);
  MOAT_INTERNAL_CHECK(qv && kv && vv, "attention ", ir::describe(ctx.graph, id), ": q, k and v must be buffers or slices of one");
  MOAT_INTERNAL_CHECK(qv->strides[2] == 1 && kv->strides[2] == 1 && vv->strides[2] == 1,
                      "attention: the head dimension must be contiguous");

  const int64_t splits = key_splits(s, a);
  const bool direct = splits == 1 && node.type.dtype == ir::DType::f32;  // accumulate into the output
  const int64_t items = s.gpu ? std::min<int64_t>(s.work_group_size, a.H) : 1;
  const int64_t block = s.gpu ? 8 : 16;                            // keys per online-softmax step
  // CPU: heads sharing a key/value head (all of them in MLA's absorbed form) go in tiles
  // of up to 4, so that each chunk of a key or value row is loaded (and converted from
  // f16 or decoded) once per tile rather than once per head; each head's arithmetic and
  // its order are those of a tile of one. GPUs spread heads over work-items instead.
  const int64_t tile = s.gpu ? 1 : lanes_for(a.group(), 4);
  const int64_t cap = s.gpu ? 4 : 4 * std::max(1, s.vector_lanes);  // f32 lanes per vector
  int64_t lk = lanes_for(a.Dk, cap), lv = lanes_for(a.Dv, cap);
  // A block-quantised cache (q8_0) is decoded a block at a time: 32 lanes, and every row
  // and value column must start on a block.
  const bool quantised_kv = ir::is_quantised(ctx.plan.buffers[static_cast<size_t>(kv->buffer)].dtype) ||
                            ir::is_quantised(ctx.plan.buffers[static_cast<size_t>(vv->buffer)].dtype);
  if (quantised_kv) {
    auto blocks = [](const StridedView& v) {
      return v.offset % 32 == 0 && v.strides[0] % 32 == 0 && v.strides[1] % 32 == 0;
    };
    MOAT_INTERNAL_CHECK(a.Dk % 32 == 0 && a.Dv % 32 == 0 && blocks(*kv) && blocks(*vv),
                        "attention over a block-quantised cache needs rows of whole blocks");
    lk = lv = 32;
  }

  // Scratch: scores [groups * items, tile, block], (m, l) [T, splits, H, 2]; without `direct`
  // also acc [T, splits, H, Dv].
  auto scratch = [&](const std::string& name, int64_t elements) {
    PlanBuffer b;
    b.name = cat(ir::describe(ctx.graph, id), " ", name);
    b.shape = {elements};
    b.bytes = elements * 4;
    ctx.plan.buffers.push_back(std::move(b));
    return static_cast<int>(ctx.plan.buffers.size()) - 1;
  };
  const int scores_buf = scratch("scores", a.T * splits * items * tile * block);
  const int acc_buf = direct ? out : scratch("partial sums", a.T * splits * a.H * a.Dv);
  const int stats_buf = scratch("partial max and sum", a.T * splits * a.H * 2);

  AttentionPlan p{node};
  p.out = out;
  p.a = a;
  p.scale = scale;
  p.causal = causal;
  p.qv = qv;
  p.kv = kv;
  p.vv = vv;
  p.splits = splits;
  p.items = items;
  p.block = block;
  p.tile = tile;
  p.lk = lk;
  p.lv = lv;
  p.direct = direct;
  p.scores_buf = scores_buf;
  p.acc_buf = acc_buf;
  p.stats_buf = stats_buf;
  return p;
}

// Online softmax over the split's keys for every head of one query (see the top).
PlanKernel partial_kernel(LowerContext& ctx, const AttentionPlan& plan) {
  const ir::Node& node = plan.node;
  const AttentionShape& a = plan.a;
  const std::optional<StridedView>&qv = plan.qv, &kv = plan.kv, &vv = plan.vv;
  const int64_t splits = plan.splits, items = plan.items, block = plan.block, lk = plan.lk, lv = plan.lv;
  const bool direct = plan.direct, causal = plan.causal;
  const double scale = plan.scale;
  const int scores_buf = plan.scores_buf, acc_buf = plan.acc_buf, stats_buf = plan.stats_buf;
  KernelBuilder kb(ctx);
  Kernel& k = kb.kernel();
  k.groups[0] = a.T * splits;
  k.items[0] = items;
  const int q = kb.use(qv->buffer, false), key = kb.use(kv->buffer, false), val = kb.use(vv->buffer, false);
  const int sc = kb.use(scores_buf, true), acc = kb.use(acc_buf, true);
  const int stats = kb.use(stats_buf, true);

  NodeRef g = builtin(Builtin::group_id, 0);
  NodeRef t = bounded_ref("t", 0, a.T - 1), split = bounded_ref("split", 0, splits - 1);
  std::vector<NodeRef> body{let("t", idiv(g, splits)), let("split", irem(g, splits))};
  // The query's keys lo..bound-1: from its key start (several sequences in one cache)
  // or 0, to its position (causal) or the end.
  const ir::AttentionOperands at = ir::attention_operands(node);
  NodeRef lo = c_i64(0);
  if (at.key_starts >= 0)
    lo = min_(c_i64(a.S), max_(c_i64(0), cast(kI64, kb.value_at(node.operands[static_cast<size_t>(at.key_starts)], {t}))));
  body.push_back(let("lo", lo));
  NodeRef bound = c_i64(a.S);
  if (causal) {
    NodeRef pos = cast(kI64, kb.value_at(node.operands[3], {t}));
    bound = min_(c_i64(a.S), max_(ref("lo", kI64), add(pos, c_i64(1))));
  }
  body.push_back(let("bound", bound));
  NodeRef even = div(add(sub(ref("bound", kI64), ref("lo", kI64)), c_i64(splits - 1)), c_i64(splits));
  body.push_back(let("chunk", splits > 1 ? max_(even, c_i64(min_split_keys(ctx.schedule, a))) : even));
  body.push_back(let("j0", add(ref("lo", kI64), mul(split, ref("chunk", kI64)))));
  body.push_back(let("j1", min_(ref("bound", kI64), add(ref("j0", kI64), ref("chunk", kI64)))));
  body.push_back(let("srow", imul(iadd(imul(g, c_i64(items)), builtin(Builtin::item_id, 0)), c_i64(plan.tile * block))));

  // Per head h (a loop variable): the slot of its partial results.
  NodeRef h = ref("h", kI64);
  auto slot_of = [&](NodeRef head) { return iadd(imul(g, c_i64(a.H)), head); };  // (t * splits + split) * H + h
  auto acc_base_of = [&](NodeRef head) {
    return direct ? imul(iadd(imul(t, c_i64(a.H)), head), c_i64(a.Dv)) : imul(slot_of(head), c_i64(a.Dv));
  };
  auto q_base_of = [&](NodeRef head) {
    return iadd(c_i64(qv->offset), iadd(imul(t, c_i64(qv->strides[0])), imul(head, c_i64(qv->strides[1]))));
  };
  NodeRef slot = slot_of(h);
  NodeRef kvh = a.group() == 1 ? h : div(h, c_i64(a.group()));  // a tile's heads share it
  auto key_base = [&](NodeRef j) {
    return iadd(c_i64(kv->offset), iadd(imul(j, c_i64(kv->strides[0])), imul(kvh, c_i64(kv->strides[1]))));
  };
  auto val_base = [&](NodeRef j) {
    return iadd(c_i64(vv->offset), iadd(imul(j, c_i64(vv->strides[0])), imul(kvh, c_i64(vv->strides[1]))));
  };
  const Type vk = kF32.with_lanes(static_cast<int>(lk)), vvt = kF32.with_lanes(static_cast<int>(lv));

  // Keys outermost, heads inside: a block of keys is loaded once for every head that
  // reads it (all of them in MLA's absorbed form). Each head's running max m, sum l and
  // acc[Dv] live in the scratch rows of its slot.
  NodeRef acc_at = add(ref("acc_base", kI64), ref("d", kI64));
  NodeRef m_at = imul(slot, c_i64(2)), l_at = iadd(imul(slot, c_i64(2)), c_i64(1));
  auto over_heads = [&](std::vector<NodeRef> per_head) {
    per_head.insert(per_head.begin(), let("acc_base", acc_base_of(h)));
    return for_loop("h", builtin(Builtin::item_id, 0), c_i64(a.H), c_i64(items), std::move(per_head));
  };
  // A head's sink logit joins its softmax once, in split 0: it starts there as the
  // running max with a sum of exp(sink - sink) = 1 and nothing in acc.
  NodeRef m0 = c_f32(kNegInf), l0 = c_f32(0);
  if (at.sinks >= 0) {
    NodeRef first = binary(BinaryOp::eq, split, c_i64(0));
    m0 = select(first, kb.value_at(node.operands[static_cast<size_t>(at.sinks)], {h}), c_f32(kNegInf));
    l0 = select(first, c_f32(1), c_f32(0));
  }
  body.push_back(over_heads({for_loop("d", c_i64(0), c_i64(a.Dv), c_i64(lv), {store(k, acc, acc_at, broadcast(c_f32(0), static_cast<int>(lv)))}),
                             store(k, stats, m_at, m0), store(k, stats, l_at, l0)}));

  // One block of keys jb .. jb + block - 1 (those >= j1 masked) for the tile of heads
  // h .. h + tile - 1. Head i's names carry i as a suffix (none in a tile of one).
  const int64_t tile = plan.tile;
  MOAT_INTERNAL_CHECK(tile == 1 || items == 1, "attention: head tiles are for one work-item per group");
  auto named = [&](const char* base, int64_t i) { return tile == 1 ? std::string(base) : cat(base, i); };
  auto head = [&](int64_t i) { return i == 0 ? h : iadd(h, c_i64(i)); };
  auto f = [&](const char* base, int64_t i) { return ref(named(base, i), kF32); };
  NodeRef j = add(ref("jb", kI64), ref("b", kI64));
  NodeRef jc = min_(j, sub(ref("j1", kI64), c_i64(1)));                  // in range for the loads
  // Head i's score at key b (the tile's scores: head i's at srow + i * block), running max
  // and sum: one node each, built once (head 0's are those above), so that emitters reuse
  // their values.
  NodeRef sc_row = ref("srow", kI64);
  std::vector<NodeRef> sc_ats{add(sc_row, ref("b", kI64))}, m_ats{m_at}, l_ats{l_at};
  for (int64_t i = 1; i < tile; ++i) {
    sc_ats.push_back(add(iadd(sc_row, c_i64(i * block)), ref("b", kI64)));
    m_ats.push_back(imul(slot_of(head(i)), c_i64(2)));
    l_ats.push_back(iadd(imul(slot_of(head(i)), c_i64(2)), c_i64(1)));
  }
  auto sc_at = [&](int64_t i) { return sc_ats[static_cast<size_t>(i)]; };
  auto m_at_of = [&](int64_t i) { return m_ats[static_cast<size_t>(i)]; };
  auto l_at_of = [&](int64_t i) { return l_ats[static_cast<size_t>(i)]; };
  // A key chunk (and below a value chunk) loaded once for the tile: inline for a tile of one.
  NodeRef key_chunk = f32_load(k, key, add(ref("k_base", kI64), ref("e", kI64)), lk);
  const bool biased = at.key_bias >= 0;  // a sparse selection: unselected keys' bias is -inf

  std::vector<NodeRef> blk, dots_init, dot_steps, score_steps;
  for (int64_t i = 0; i < tile; ++i) {
    blk.push_back(let(named("q_base", i), q_base_of(head(i))));
    blk.push_back(var(named("bmax", i), c_f32(kNegInf)));
    const std::string dot = named("dot", i);
    dots_init.push_back(var(dot, broadcast(c_f32(0), static_cast<int>(lk))));
    dot_steps.push_back(assign(dot, fma(f32_load(k, q, add(ref(named("q_base", i), kI64), ref("e", kI64)), lk),
                                        tile == 1 ? key_chunk : ref("kx", vk), ref(dot, vk))));
    NodeRef score = mul(reduce(ReduceOp::add, ref(dot, vk)), c_f32(scale));
    if (biased) score = add(score, kb.value_at(node.operands[static_cast<size_t>(at.key_bias)], {t, jc}));
    score = select(lt(j, ref("j1", kI64)), score, c_f32(kNegInf));
    if (tile == 1) {
      score_steps.push_back(let(named("score", i), score));
      score_steps.push_back(store(k, sc, sc_at(i), f("score", i)));
      score_steps.push_back(assign(named("bmax", i), max_(f("bmax", i), f("score", i))));
    } else {  // the tile's scores stored one after another: their sums are computed jointly
      score_steps.insert(score_steps.begin() + i, store(k, sc, sc_at(i), score));
      score_steps.push_back(assign(named("bmax", i), max_(f("bmax", i), load(k, sc, sc_at(i)))));
    }
  }
  if (tile > 1) dot_steps.insert(dot_steps.begin(), let("kx", key_chunk));
  std::vector<NodeRef> per_key{let("k_base", key_base(jc))};
  per_key.insert(per_key.end(), dots_init.begin(), dots_init.end());
  per_key.push_back(for_loop("e", c_i64(0), c_i64(a.Dk), c_i64(lk), std::move(dot_steps)));
  per_key.insert(per_key.end(), score_steps.begin(), score_steps.end());
  blk.push_back(for_loop("b", c_i64(0), c_i64(block), c_i64(1), std::move(per_key)));

  for (int64_t i = 0; i < tile; ++i) {
    blk.push_back(let(named("m", i), load(k, stats, m_at_of(i))));
    blk.push_back(let(named("m_new", i), max_(f("m", i), f("bmax", i))));
    // With a bias, a block (and the max so far) may be all -inf: exponents then take 0
    // as the max, so that every p and corr is 0 rather than exp(-inf + inf) = NaN.
    NodeRef m_use = f("m_new", i);
    if (biased) {
      blk.push_back(let(named("m_use", i), select(binary(BinaryOp::eq, f("m_new", i), c_f32(kNegInf)), c_f32(0), f("m_new", i))));
      m_use = f("m_use", i);
    }
    blk.push_back(let(named("corr", i), unary(UnaryOp::exp, sub(f("m", i), m_use))));
    blk.push_back(var(named("l", i), mul(load(k, stats, l_at_of(i)), f("corr", i))));
    NodeRef p = unary(UnaryOp::exp, sub(load(k, sc, sc_at(i)), m_use));
    blk.push_back(for_loop("b", c_i64(0), c_i64(block), c_i64(1),
                           {let(named("p", i), p), store(k, sc, sc_at(i), f("p", i)), assign(named("l", i), add(f("l", i), f("p", i)))}));
  }
  NodeRef value_chunk = f32_load(k, val, add(val_base(jc), ref("d", kI64)), lv);
  std::vector<NodeRef> accs_init, v_steps, acc_stores;
  for (int64_t i = 0; i < tile; ++i) {
    const std::string acc_i = named("a", i);
    NodeRef at_i = add(ref(named("acc_base", i), kI64), ref("d", kI64));
    accs_init.push_back(var(acc_i, mul(load(k, acc, at_i, static_cast<int>(lv)), broadcast(f("corr", i), static_cast<int>(lv)))));
    v_steps.push_back(assign(acc_i, fma(broadcast(load(k, sc, sc_at(i)), static_cast<int>(lv)),
                                        tile == 1 ? value_chunk : ref("vx", vvt), ref(acc_i, vvt))));
    acc_stores.push_back(store(k, acc, at_i, ref(acc_i, vvt)));
  }
  if (tile > 1) v_steps.insert(v_steps.begin(), let("vx", value_chunk));
  std::vector<NodeRef> per_chunk = std::move(accs_init);
  per_chunk.push_back(for_loop("b", c_i64(0), c_i64(block), c_i64(1), std::move(v_steps)));
  per_chunk.insert(per_chunk.end(), acc_stores.begin(), acc_stores.end());
  blk.push_back(for_loop("d", c_i64(0), c_i64(a.Dv), c_i64(lv), std::move(per_chunk)));
  for (int64_t i = 0; i < tile; ++i) {
    blk.push_back(store(k, stats, m_at_of(i), f("m_new", i)));
    blk.push_back(store(k, stats, l_at_of(i), f("l", i)));
  }
  // Over the tiles: head i's acc_base first (over_heads' for a tile of one).
  for (int64_t i = tile; i-- > 0;) blk.insert(blk.begin(), let(named("acc_base", i), acc_base_of(head(i))));
  body.push_back(for_loop("jb", ref("j0", kI64), ref("j1", kI64), c_i64(block),
                          {for_loop("h", builtin(Builtin::item_id, 0), c_i64(a.H), c_i64(items * tile), std::move(blk))}));
  if (direct) {  // one split: normalise in place
    NodeRef inv = broadcast(div(c_f32(1), load(k, stats, l_at)), static_cast<int>(lv));
    body.push_back(over_heads({for_loop("d", c_i64(0), c_i64(a.Dv), c_i64(lv),
                                        {store(k, acc, acc_at, mul(load(k, acc, acc_at, static_cast<int>(lv)), inv))})}));
  }
  return kb.finish("attention", std::move(body));
}

// out[t, h] from the splits' partial results.
PlanKernel combine_kernel(LowerContext& ctx, const AttentionPlan& plan) {
  const ir::Node& node = plan.node;
  const AttentionShape& a = plan.a;
  const Schedule& s = ctx.schedule;
  const int64_t splits = plan.splits, lv = plan.lv;
  const int out = plan.out, acc_buf = plan.acc_buf, stats_buf = plan.stats_buf;
  KernelBuilder kb(ctx);
  Kernel& k = kb.kernel();
  const int acc = kb.use(acc_buf, false), stats = kb.use(stats_buf, false);
  const int64_t rows = a.T * a.H;
  const int64_t items2 = s.gpu ? std::min<int64_t>(s.work_group_size, rows) : 1;
  const int64_t per_group = s.gpu ? items2 : std::max<int64_t>(1, s.elements_per_group / (a.Dv * splits));
  k.items[0] = items2;
  k.groups[0] = ceil_div(rows, per_group);
  NodeRef row_begin = s.gpu ? iadd(imul(builtin(Builtin::group_id, 0), c_i64(items2)), builtin(Builtin::item_id, 0))
                            : imul(builtin(Builtin::group_id, 0), c_i64(per_group));
  NodeRef row_end = s.gpu ? add(ref("r0", kI64), c_i64(1)) : min_(c_i64(rows), add(ref("r0", kI64), c_i64(per_group)));
  NodeRef r = bounded_ref("r", 0, rows - 1);
  NodeRef t = div(r, c_i64(a.H)), h = rem(r, c_i64(a.H));
  auto slot = [&](NodeRef sp) { return add(mul(add(mul(t, c_i64(splits)), sp), c_i64(a.H)), h); };
  NodeRef m_s = load(k, stats, mul(slot(ref("sp", kI64)), c_i64(2)));
  NodeRef l_s = load(k, stats, add(mul(slot(ref("sp", kI64)), c_i64(2)), c_i64(1)));
  const Type vvt = kF32.with_lanes(static_cast<int>(lv));
  std::vector<NodeRef> row{
      var("mx", c_f32(kNegInf)),
      for_loop("sp", c_i64(0), c_i64(splits), c_i64(1), {assign("mx", max_(ref("mx", kF32), m_s))}),
      var("sum", c_f32(0)),
      for_loop("sp", c_i64(0), c_i64(splits), c_i64(1),
               {assign("sum", fma(unary(UnaryOp::exp, sub(m_s, ref("mx", kF32))), l_s, ref("sum", kF32)))}),
      let("inv", div(c_f32(1), ref("sum", kF32)))};
  NodeRef part = load(k, acc, add(mul(slot(ref("sp", kI64)), c_i64(a.Dv)), ref("d", kI64)), static_cast<int>(lv));
  NodeRef w = broadcast(mul(unary(UnaryOp::exp, sub(m_s, ref("mx", kF32))), ref("inv", kF32)), static_cast<int>(lv));
  std::vector<NodeRef> per_d{var("o", broadcast(c_f32(0), static_cast<int>(lv))),
                             for_loop("sp", c_i64(0), c_i64(splits), c_i64(1), {assign("o", fma(w, part, ref("o", vvt)))})};
  if (node.type.dtype == ir::DType::f32) {
    const int o = kb.use(out, true);
    per_d.push_back(store(k, o, add(mul(r, c_i64(a.Dv)), ref("d", kI64)), ref("o", vvt)));
  } else {
    for (int64_t lane = 0; lane < lv; ++lane)
      per_d.push_back(kb.store_value(out, {t, h, add(ref("d", kI64), c_i64(lane))}, extract(ref("o", vvt), c_i64(lane))));
  }
  row.push_back(for_loop("d", c_i64(0), c_i64(a.Dv), c_i64(lv), std::move(per_d)));
  std::vector<NodeRef> body{let("r0", row_begin)};
  if (s.gpu)
    body.push_back(if_then(lt(ref("r0", kI64), c_i64(rows)), {for_loop("r", ref("r0", kI64), row_end, c_i64(1), std::move(row))}));
  else
    body.push_back(for_loop("r", ref("r0", kI64), row_end, c_i64(1), std::move(row)));
  return kb.finish("attention_combine", std::move(body));
}

}  // namespace

std::vector<PlanKernel> attention_kernels(LowerContext& ctx, ir::NodeId id, int out) {
  const AttentionPlan p = plan_attention(ctx, id, out);
  std::vector<PlanKernel> kernels{partial_kernel(ctx, p)};
  if (!p.direct) kernels.push_back(combine_kernel(ctx, p));  // one (t, h) row per work-item (GPU) or rows per group (CPU)
  return kernels;
}

PlanKernel write_rows_kernel(LowerContext& ctx, ir::NodeId id, int out) {
  KernelBuilder kb(ctx);
  Kernel& k = kb.kernel();
  const ir::Node& node = ctx.node(id);
  const std::vector<int64_t>& dst = ctx.shape(id);
  const std::vector<int64_t>& rows_shape = ctx.shape(node.operands[1]);
  const int64_t n_rows = rows_shape[0], row_len = numel(dst) / std::max<int64_t>(1, dst[0]);
  const std::vector<int64_t> row_shape(dst.begin() + 1, dst.end());
  const int o = kb.use(out, true);
  if (ir::is_quantised(node.type.dtype)) {
    // Whole blocks: a row is a byte range, copied from the rows' buffer (the quantised
    // new rows, materialised by their cast).
    const int src = kb.use(ctx.buffer_of.at(static_cast<size_t>(node.operands[1])), false);
    const int64_t row_bytes = ir::tensor_bytes(node.type.dtype, {1, dst.back()}) * (row_len / dst.back());
    for (auto [buffer, rows] : {std::pair{o, dst[0]}, std::pair{src, n_rows}}) {  // seen here as plain bytes
      k.buffers[static_cast<size_t>(buffer)].dtype = ir::DType::u8;
      k.buffers[static_cast<size_t>(buffer)].elements = rows * row_bytes;
    }
    NodeRef i = bounded_ref("i", 0, n_rows - 1);
    NodeRef e = bounded_ref("e", 0, row_bytes - 1);
    NodeRef dst_row = cast(kI64, kb.value_at(node.operands[2], {i}));
    NodeRef copy = store(k, o, add(mul(ref("dst_row", kI64), c_i64(row_bytes)), e), load(k, src, add(mul(i, c_i64(row_bytes)), e)));
    NodeRef ok = binary(BinaryOp::land, lt(ref("dst_row", kI64), c_i64(dst[0])), binary(BinaryOp::le, c_i64(0), ref("dst_row", kI64)));
    std::vector<NodeRef> body{for_loop("i", c_i64(0), c_i64(n_rows), c_i64(1),
                                       {let("dst_row", dst_row), if_then(ok, {for_loop("e", c_i64(0), c_i64(row_bytes), c_i64(1), {copy})})})};
    return kb.finish("write_rows", std::move(body));
  }
  // Row i of `rows` goes to row at[i]; an index outside the destination is skipped (a
  // kernel cannot raise the interpreter's error).
  auto element = [&](NodeRef i, NodeRef e) {
    std::vector<NodeRef> src_idx{i};
    for (NodeRef x : delinearize(e, row_shape)) src_idx.push_back(x);
    NodeRef value = kb.value_at(node.operands[1], src_idx);
    return store(k, o, add(mul(ref("dst_row", kI64), c_i64(row_len)), e), kb.to_storage(value, node.type.dtype));
  };
  auto row_prologue = [&](NodeRef i) {
    return let("dst_row", cast(kI64, kb.value_at(node.operands[2], {i})));
  };
  NodeRef in_range = binary(BinaryOp::land, lt(ref("dst_row", kI64), c_i64(dst[0])),
                            binary(BinaryOp::le, c_i64(0), ref("dst_row", kI64)));
  std::vector<NodeRef> body;
  if (ctx.schedule.gpu) {  // one element per work-item
    const int64_t total = n_rows * row_len, items = std::min<int64_t>(ctx.schedule.work_group_size, std::max<int64_t>(1, total));
    k.items[0] = items;
    k.groups[0] = ceil_div(std::max<int64_t>(1, total), items);
    body.push_back(let("x", iadd(imul(builtin(Builtin::group_id, 0), c_i64(items)), builtin(Builtin::item_id, 0))));
    NodeRef x = bounded_ref("x", 0, std::max<int64_t>(1, total) - 1);
    std::vector<NodeRef> inner{row_prologue(div(x, c_i64(row_len))),
                               if_then(in_range, {element(div(x, c_i64(row_len)), rem(x, c_i64(row_len)))})};
    body.push_back(if_then(lt(ref("x", kI64), c_i64(total)), std::move(inner)));
  } else if (row_shape.size() == 1) {  // one group writes every row (a few rows of a few KB)
    NodeRef i = bounded_ref("i", 0, n_rows - 1);
    auto store_element = [&](NodeRef e, NodeRef value) {
      return store(k, o, add(mul(ref("dst_row", kI64), c_i64(row_len)), e), kb.to_storage(value, node.type.dtype));
    };
    body.push_back(for_loop("i", c_i64(0), c_i64(n_rows), c_i64(1),
                            {row_prologue(i), if_then(in_range, row_loops(kb, node.operands[1], {i}, row_len, store_element))}));
  } else {
    NodeRef i = bounded_ref("i", 0, n_rows - 1);
    NodeRef e = bounded_ref("e", 0, row_len - 1);
    body.push_back(for_loop("i", c_i64(0), c_i64(n_rows), c_i64(1),
                            {row_prologue(i), if_then(in_range, {for_loop("e", c_i64(0), c_i64(row_len), c_i64(1), {element(i, e)})})}));
  }
  return kb.finish("write_rows", std::move(body));
}

}  // namespace moat::jit
