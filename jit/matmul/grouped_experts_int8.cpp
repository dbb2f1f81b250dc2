// grouped_experts (grouped_experts.cpp) with int8 products, for a q8_0 A and a Q8_0 /
// Q4_0 / Q5_0 table: a work-group takes one expert and up to kTilesPerGroup tiles of 16
// columns (the slot list made once); per tile (packed, or laid out once by
// weight_tile) it runs every slot that chose the expert through int8_rows, kPassSlots
// slots per pass, then one at a time.
#include "jit/matmul/grouped_experts.h"
#include "jit/matmul/int8_tiles.h"

namespace moat::jit::matmul {

namespace {

constexpr int64_t kTilesPerGroup = 4;
constexpr int kPassSlots = 4;

bool applies(const Schedule& s, const MatmulShape& mm) { return grouped_experts_fit(s, mm) && mm.int8_tiles(); }

std::vector<NodeRef> lower(MatmulBuilder& mm) {
  KernelBuilder& kb = mm.kb;
  const Operands& o = mm.o;
  const int64_t slots = numel(mm.out_batch);
  Kernel& k = kb.kernel();
  const int64_t experts = mm.table_shape[0], C = kTileCols, tiles = ceil_div(o.n, C), per_group = kTilesPerGroup;
  const int64_t groups_per_expert = ceil_div(tiles, per_group);
  k.groups[0] = experts * groups_per_expert;
  std::string e = kb.fresh("e"), g = kb.fresh("g"), count = kb.fresh("count");
  std::string tile = kb.fresh("tile"), n0 = kb.fresh("n0");
  NodeRef e_ref = bounded_ref(e, 0, experts - 1), count_ref = ref(count, kI64), n0_ref = ref(n0, kI64);
  std::vector<NodeRef> body{let(e, idiv(builtin(Builtin::group_id, 0), groups_per_expert)),
                            let(g, irem(builtin(Builtin::group_id, 0), groups_per_expert))};
  const MatmulBuilder::SlotList list = mm.slots_of_expert(e_ref, slots, count);
  const int chosen = list.chosen;
  body.insert(body.end(), list.stmts.begin(), list.stmts.end());
  std::vector<NodeRef> per_tile{let(n0, imul(ref(tile, kI64), c_i64(C)))};
  WeightTile w = o.b_scales >= 0 ? packed_tile(iadd(imul(e_ref, c_i64(o.n / C)), ref(tile, kI64)))
                                 : weight_tile(mm, [&](const NodeRef& c) {
                                     return iadd(imul(e_ref, c_i64(o.n)), min_(iadd(n0_ref, c), c_i64(o.n - 1)));
                                   });
  per_tile.insert(per_tile.end(), w.stmts.begin(), w.stmts.end());
  // the slots kPassSlots at a time, then the rest one at a time
  auto passes = [&](int rows, NodeRef begin, NodeRef end) {
    std::string c0 = kb.fresh("c0");
    NodeRef c0_ref = ref(c0, kI64);
    std::vector<NodeRef> per_pass;
    std::vector<std::string> slot(static_cast<size_t>(rows)), a_blk(static_cast<size_t>(rows)), acc;
    for (int r = 0; r < rows; ++r) {
      slot[r] = kb.fresh("slot");
      a_blk[r] = kb.fresh("a_blk");
      per_pass.push_back(let(slot[r], load(k, chosen, iadd(c0_ref, c_i64(r)))));
      per_pass.push_back(let(a_blk[r], mm.a_row_block(ref(slot[r], kI64), c_i64(0))));
    }
    std::vector<NodeRef> loop = int8_rows(mm, w, a_blk, acc);
    per_pass.insert(per_pass.end(), loop.begin(), loop.end());
    for (int r = 0; r < rows; ++r) {
      std::vector<NodeRef> st = store_columns(mm, ref(slot[r], kI64), c_i64(0), n0_ref, acc[r]);
      per_pass.insert(per_pass.end(), st.begin(), st.end());
    }
    return for_loop(c0, std::move(begin), std::move(end), c_i64(rows), std::move(per_pass));
  };
  NodeRef whole = imul(idiv(count_ref, kPassSlots), c_i64(kPassSlots));
  per_tile.push_back(passes(kPassSlots, c_i64(0), whole));
  per_tile.push_back(passes(1, whole, count_ref));
  NodeRef first = imul(ref(g, kI64), c_i64(per_group));
  body.push_back(if_then(lt(c_i64(0), count_ref), {for_loop(tile, first, min_(iadd(first, c_i64(per_group)), c_i64(tiles)),
                                                            c_i64(1), std::move(per_tile))}));
  return body;
}

}  // namespace

const MatmulStrategy kGroupedExpertsInt8{"grouped_experts_int8", applies, lower};

}  // namespace moat::jit::matmul
