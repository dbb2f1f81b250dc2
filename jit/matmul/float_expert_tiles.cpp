// CPU, experts of a MoE layer with a float table (f32 / f16 / bf16) in tiles of 16 rows
// (jit/weight_packing.h; the lowering tiles a table only where each use is this
// strategy's or float_tiles.cpp's and the caller lets it copy the table, jit/lower.h's
// LowerOptions): B gathered from [E, N, K] by each slot's expert index, one f32 row of
// A per slot, in float_tiles.h's passes (each converted vector of B serves every slot
// of the pass).
// - grouped (enough slots per expert to share its weights, as in a decode step of
//   several sequences or a prefill): a work-group per expert and block of tiles lists
//   the slots that chose the expert and runs them in passes of 4, then 2, then 1;
// - per slot (fewer, as in one sequence's decode step): a work-group per slot and block.
// Either way a slot's result does not depend on the slots beside it (a sequence decoded
// alone or in a batch gets the same bits).
#include "jit/matmul/float_tiles.h"
#include "support/error.h"

namespace moat::jit::matmul {

namespace {

constexpr int kPassSlots[] = {4, 2, 1};  // grouped: slots per pass, largest first
constexpr int64_t kLocalShare = 4;       // the slot list: at most 1 / kLocalShare of local memory

bool applies(const Schedule&, const MatmulShape& mm) { return mm.float_tiles_b && mm.gathered_b; }

std::vector<NodeRef> lower(MatmulBuilder& mm) {
  KernelBuilder& kb = mm.kb;
  const Operands& o = mm.o;
  const Schedule& s = mm.schedule();
  const int64_t slots = numel(mm.out_batch), experts = mm.table_shape.at(0);
  MOAT_INTERNAL_CHECK(!s.gpu && o.transposed && o.m == 1 && o.n % kTileLanes == 0 && o.scales < 0 &&
                          mm.table_shape.size() == 3 && o.a_dtype == ir::DType::f32,
                      "float expert tiles: a matmul the lowering should not have tiled (m ", o.m, ", n ", o.n, ", table rank ",
                      mm.table_shape.size(), ")");
  Kernel& k = kb.kernel();
  const int64_t block = float_block_tiles(o.n / kTileLanes), blocks = o.n / kTileLanes / block;
  std::string g = kb.fresh("g");
  NodeRef t0 = imul(ref(g, kI64), c_i64(block));
  const bool grouped = slots >= 2 * experts && slots * 8 <= s.local_memory_bytes / kLocalShare;
  if (!grouped) {
    std::string slot = kb.fresh("slot"), e = kb.fresh("e");
    k.groups[0] = slots * blocks;
    NodeRef slot_ref = bounded_ref(slot, 0, slots - 1);
    std::vector<NodeRef> body{let(slot, idiv(builtin(Builtin::group_id, 0), blocks)),
                              let(g, irem(builtin(Builtin::group_id, 0), blocks)), let(e, mm.batch_b(slot_ref))};
    body.push_back(float_tile_pass(mm, {{slot_ref, c_i64(0)}}, bounded_ref(e, 0, experts - 1), t0, block));
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
    std::vector<NodeRef> per_pass;
    std::vector<TileRow> pass_slots;
    for (int i = 0; i < size; ++i) {
      std::string slot = kb.fresh("slot");
      per_pass.push_back(let(slot, load(k, list.chosen, iadd(c0_ref, c_i64(i)))));
      pass_slots.push_back({bounded_ref(slot, 0, slots - 1), c_i64(0)});
    }
    per_pass.push_back(float_tile_pass(mm, pass_slots, e_ref, t0, block));
    body.push_back(for_loop(c0, begin, ref(end, kI64), c_i64(size), std::move(per_pass)));
    begin = ref(end, kI64);
  }
  return body;
}

}  // namespace

const MatmulStrategy kFloatExpertTiles{"float_expert_tiles", applies, lower};

}  // namespace moat::jit::matmul
