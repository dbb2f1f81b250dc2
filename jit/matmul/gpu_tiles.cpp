// The sub-group tile scaffolding of the GPU int8 strategies (gpu_tiles.h).
#include "jit/matmul/gpu_tiles.h"

#include <algorithm>

#include "jit/weight_packing.h"

namespace moat::jit::matmul {

NodeRef GpuTileLanes::valid(int64_t r) const { return lt(iadd(m0, c_i64(r)), c_i64(m)); }

GpuTileLanes gpu_tile_lanes(MatmulBuilder& mm, int64_t rows, std::vector<NodeRef>& body) {
  KernelBuilder& kb = mm.kb;
  Kernel& k = kb.kernel();
  const Schedule& s = mm.schedule();
  GpuTileLanes out;
  out.L = std::max(1, s.sub_group_size);
  out.S = s.work_group_size / out.L;
  out.cluster = out.L >= 4 ? out.L / 4 : 1;
  out.g_step = out.L >= 4 ? 4 : out.L;
  out.rows = rows;
  out.tiles = mm.o.n / kPackRows;
  out.m = mm.o.m;
  k.items[0] = s.work_group_size;
  k.groups[0] = ceil_div(out.tiles, out.S);
  k.groups[1] = ceil_div(mm.o.m, rows);
  k.groups[2] = numel(mm.out_batch);
  std::string batch = kb.fresh("batch"), m0 = kb.fresh("m0"), lane = kb.fresh("lane"), t = kb.fresh("t");
  std::string tile = kb.fresh("tile"), q = kb.fresh("q");
  out.batch = ref(batch, kI64);
  out.m0 = ref(m0, kI64);
  out.t = ref(t, kI64);
  out.tile = ref(tile, kI64);
  out.q = ref(q, kI64);
  NodeRef lane_ref = ref(lane, kI64), item = builtin(Builtin::item_id, 0);
  body.push_back(let(batch, builtin(Builtin::group_id, 2)));
  body.push_back(let(m0, imul(builtin(Builtin::group_id, 1), c_i64(rows))));
  body.push_back(let(lane, irem(item, out.L)));
  body.push_back(let(t, iadd(imul(builtin(Builtin::group_id, 0), c_i64(out.S)), idiv(item, out.L))));
  body.push_back(let(tile, iadd(imul(mm.batch_b(out.batch), c_i64(out.tiles)), out.t)));
  body.push_back(let(q, out.L >= 4 ? irem(lane_ref, out.cluster) : c_i64(0)));
  out.g0 = out.L >= 4 ? idiv(lane_ref, out.cluster) : lane_ref;
  return out;
}

std::vector<std::vector<std::string>> gpu_tile_accumulators(MatmulBuilder& mm, int64_t rows, std::vector<NodeRef>& per_group) {
  std::vector<std::vector<std::string>> acc(static_cast<size_t>(rows));
  for (auto& row : acc)
    for (int j = 0; j < 4; ++j) {
      row.push_back(mm.kb.fresh("acc"));
      per_group.push_back(var(row.back(), c_f32(0.0)));
    }
  return acc;
}

NodeRef f16_of_words(const std::string& pairs, int j) {
  NodeRef pair = ref(lane_name(pairs, j / 2), kI32);
  return cast(kF32, bitcast({Scalar::f16, 1}, j % 2 == 0 ? pair : binary(BinaryOp::shr, pair, c_i32(16))));
}

void gpu_tile_store(MatmulBuilder& mm, const GpuTileLanes& lanes, const std::string& g,
                    const std::vector<std::vector<std::string>>& acc, std::vector<NodeRef> per_group,
                    std::vector<NodeRef>& body) {
  NodeRef g_ref = bounded_ref(g, 0, 3);
  std::vector<NodeRef> stores;
  for (int64_t r = 0; r < lanes.rows; ++r) {
    std::vector<NodeRef> row_stores;
    for (int j = 0; j < 4; ++j) {
      NodeRef total = ref(acc[static_cast<size_t>(r)][static_cast<size_t>(j)], kF32);
      if (lanes.cluster > 1) {  // every lane of the sub-group reaches this (uniform control flow)
        std::string sum = mm.kb.fresh("sum");
        per_group.push_back(let(sum, subgroup_reduce(ReduceOp::add, total, static_cast<int>(lanes.cluster))));
        total = ref(sum, kF32);
      }
      NodeRef n = iadd(imul(lanes.t, c_i64(kPackRows)), iadd(imul(g_ref, c_i64(4)), c_i64(j)));
      row_stores.push_back(mm.store_out(lanes.batch, iadd(lanes.m0, c_i64(r)), n, total));
    }
    stores.push_back(if_then(lanes.valid(r), std::move(row_stores)));
  }
  per_group.push_back(if_then(binary(BinaryOp::eq, lanes.q, c_i64(0)), std::move(stores)));
  body.push_back(if_then(lt(lanes.t, c_i64(lanes.tiles)), loop_or_let(g, lanes.g0, 4, lanes.g_step, std::move(per_group))));
}

}  // namespace moat::jit::matmul
