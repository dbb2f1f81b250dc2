// CPU, experts of a MoE layer with a float table (f32 / f16 / bf16) in tiles of 16 rows
// (jit/weight_packing.h; the lowering tiles a table only where every use is this
// strategy's and the caller lets it copy the table, jit/lower.h's LowerOptions): B
// gathered from [E, N, K] by each slot's expert index, one f32 row of A
// per slot. A vector of a tile is B(k, n .. n + 15), so a slot's tiles of outputs
// accumulate A[slot, k] (broadcast) times such vectors, k in order, and are stored as
// vectors: no horizontal adds, and each converted vector of B serves every slot of the
// pass beside it.
// - grouped (enough slots per expert to share its weights, as in a decode step of
//   several sequences or a prefill): a work-group per expert and block of tiles lists
//   the slots that chose the expert and runs them in passes of 4, then 2, then 1;
// - per slot (fewer, as in one sequence's decode step): a work-group per slot and block.
// Every output is the same chain of multiply-adds over k in order either way, so a
// slot's result does not depend on the slots beside it (a sequence decoded alone or in
// a batch gets the same bits).
#include <algorithm>
#include <bit>

#include "jit/matmul/matmul.h"
#include "support/error.h"

namespace moat::jit::matmul {

namespace {

constexpr int64_t kLanes = kPackRows;  // columns per tile: one vector of f32
constexpr int64_t kBlockTiles = 8;     // tiles per work-group where N allows (else 4, 2, 1)
// Vectors of 16 f32 a pass accumulates at once (slots x tiles): half of AVX-512's 32
// registers; 6 (12 of 16 registers) where a vector takes two (AVX2).
constexpr int64_t kAccumulators = 16, kAccumulatorsNarrow = 6;
constexpr int kPassSlots[] = {4, 2, 1};  // grouped: slots per pass, largest first
constexpr int64_t kLocalShare = 4;     // the slot list: at most 1 / kLocalShare of local memory

bool applies(const Schedule&, const MatmulShape& mm) { return mm.float_tiles_b; }

// Tiles of 16 columns per work-group: kBlockTiles, or the largest power of two below it
// that divides the tiles of an expert.
int64_t block_tiles(int64_t tiles) {
  int64_t c = kBlockTiles;
  while (tiles % c != 0) c /= 2;
  return c;
}

// One pass: `slots` (their output batches) times expert `e`'s tiles t0 .. t0 + block_tiles
// - 1, as many tiles at a time as fill the accumulators (a power of two: with one slot
// and 8 tiles a block, 8 chains, so the multiply-adds of one k do not wait on each other).
NodeRef pass(MatmulBuilder& mm, const std::vector<NodeRef>& slots, const NodeRef& e, const NodeRef& t0, int64_t block_tiles) {
  KernelBuilder& kb = mm.kb;
  const Operands& o = mm.o;
  Kernel& k = kb.kernel();
  const Type t = kF32.with_lanes(static_cast<int>(kLanes));
  const int64_t tiles = o.n / kLanes;
  const int64_t accumulators = mm.schedule().vector_lanes >= kLanes ? kAccumulators : kAccumulatorsNarrow;
  const auto fit = static_cast<uint64_t>(std::max<int64_t>(1, accumulators / static_cast<int64_t>(slots.size())));
  const int64_t block = std::min(block_tiles, static_cast<int64_t>(std::bit_floor(fit)));
  std::string kc = kb.fresh("k"), tc = kb.fresh("t");
  NodeRef kk = ref(kc, kI64), first = ref(tc, kI64);
  std::vector<NodeRef> stmts, dot;
  std::vector<std::string> a_base, acc;  // acc[s * block + c]
  for (size_t s = 0; s < slots.size(); ++s) {
    a_base.push_back(kb.fresh("a_row"));
    stmts.push_back(let(a_base.back(), mm.a_row(slots[s], c_i64(0))));
    for (int64_t c = 0; c < block; ++c) {
      acc.push_back(kb.fresh("acc"));
      stmts.push_back(var(acc.back(), broadcast(c_f32(0.0), static_cast<int>(kLanes))));
    }
  }
  std::vector<std::string> av;
  for (size_t s = 0; s < slots.size(); ++s) {
    av.push_back(kb.fresh("a"));
    dot.push_back(let(av.back(), broadcast(mm.a_value(ref(a_base[s], kI64), kk, 1), static_cast<int>(kLanes))));
  }
  for (int64_t c = 0; c < block; ++c) {
    std::string bv = kb.fresh("bv");
    NodeRef tile = iadd(imul(e, c_i64(tiles)), iadd(first, c_i64(c)));
    NodeRef at = imul(iadd(imul(tile, c_i64(o.k)), kk), c_i64(kLanes));
    dot.push_back(let(bv, cast(t, load(k, o.b, at, static_cast<int>(kLanes)))));
    for (size_t s = 0; s < slots.size(); ++s) {
      const std::string& a = acc[s * static_cast<size_t>(block) + static_cast<size_t>(c)];
      dot.push_back(assign(a, fma(ref(av[s], t), ref(bv, t), ref(a, t))));
    }
  }
  stmts.push_back(for_loop(kc, c_i64(0), c_i64(o.k), c_i64(1), std::move(dot)));
  for (size_t s = 0; s < slots.size(); ++s)
    for (int64_t c = 0; c < block; ++c)
      stmts.push_back(mm.store_out(slots[s], c_i64(0), imul(iadd(first, c_i64(c)), c_i64(kLanes)),
                                   ref(acc[s * static_cast<size_t>(block) + static_cast<size_t>(c)], t)));
  return for_loop(tc, t0, iadd(t0, c_i64(block_tiles)), c_i64(block), std::move(stmts));
}

std::vector<NodeRef> lower(MatmulBuilder& mm) {
  KernelBuilder& kb = mm.kb;
  const Operands& o = mm.o;
  const Schedule& s = mm.schedule();
  const int64_t slots = numel(mm.out_batch), experts = mm.table_shape.at(0);
  MOAT_INTERNAL_CHECK(!s.gpu && o.transposed && o.m == 1 && o.n % kLanes == 0 && o.scales < 0 &&
                          mm.table_shape.size() == 3 && o.a_dtype == ir::DType::f32,
                      "float expert tiles: a matmul the lowering should not have tiled (m ", o.m, ", n ", o.n, ", table rank ",
                      mm.table_shape.size(), ")");
  Kernel& k = kb.kernel();
  const int64_t block = block_tiles(o.n / kLanes), blocks = o.n / kLanes / block;
  std::string g = kb.fresh("g");
  NodeRef t0 = imul(ref(g, kI64), c_i64(block));
  const bool grouped = slots >= 2 * experts && slots * 8 <= s.local_memory_bytes / kLocalShare;
  if (!grouped) {
    std::string slot = kb.fresh("slot"), e = kb.fresh("e");
    k.groups[0] = slots * blocks;
    NodeRef slot_ref = bounded_ref(slot, 0, slots - 1);
    std::vector<NodeRef> body{let(slot, idiv(builtin(Builtin::group_id, 0), blocks)),
                              let(g, irem(builtin(Builtin::group_id, 0), blocks)), let(e, mm.batch_b(slot_ref))};
    body.push_back(pass(mm, {slot_ref}, bounded_ref(e, 0, experts - 1), t0, block));
    return body;
  }
  k.groups[0] = experts * blocks;
  std::string e = kb.fresh("e"), count = kb.fresh("count");
  NodeRef e_ref = bounded_ref(e, 0, experts - 1), count_ref = ref(count, kI64);
  std::vector<NodeRef> body{let(e, idiv(builtin(Builtin::group_id, 0), blocks)),
                            let(g, irem(builtin(Builtin::group_id, 0), blocks))};
  const MatmulBuilder::SlotList list = mm.slots_of_expert(e_ref, slots, count);  // slots that chose the expert
  body.insert(body.end(), list.stmts.begin(), list.stmts.end());
  // passes of kPassSlots[0] slots while that many are left, then of each smaller size
  NodeRef begin = c_i64(0);
  for (int size : kPassSlots) {
    std::string c0 = kb.fresh("c0"), end = kb.fresh("end");
    NodeRef c0_ref = ref(c0, kI64);
    body.push_back(let(end, iadd(begin, imul(idiv(binary(BinaryOp::sub, count_ref, begin), size), c_i64(size)))));
    std::vector<NodeRef> per_pass, pass_slots;
    for (int i = 0; i < size; ++i) {
      std::string slot = kb.fresh("slot");
      per_pass.push_back(let(slot, load(k, list.chosen, iadd(c0_ref, c_i64(i)))));
      pass_slots.push_back(bounded_ref(slot, 0, slots - 1));
    }
    per_pass.push_back(pass(mm, pass_slots, e_ref, t0, block));
    body.push_back(for_loop(c0, begin, ref(end, kI64), c_i64(size), std::move(per_pass)));
    begin = ref(end, kI64);
  }
  return body;
}

}  // namespace

const MatmulStrategy kFloatExpertTiles{"float_expert_tiles", applies, lower};

}  // namespace moat::jit::matmul
