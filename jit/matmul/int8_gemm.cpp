// CPU, a q8_0 A of several rows times a Q8_0 / Q4_0 / Q5_0 B (prefill): integer products
// summed per block for 16 columns at once. A work-group takes one tile of 16 columns n
// (jit/matmul/int8_tiles.h: packed, or laid out in local memory first) and up to
// kGroupRows rows m. For each row of A and block, 8 dot4 of the tile's 64 bytes with
// the row's quad (the same 4 bytes in every lane) give the 16 integer dot products
// (less offset x the sum of the row's quants, the accumulator's start), converted and
// scaled by d_a * d_b into f32 accumulators; kPassRows rows of A share each tile read.
#include <algorithm>

#include "jit/matmul/int8_tiles.h"

namespace moat::jit::matmul {

namespace {

constexpr int64_t kPassRows = 4, kGroupRows = 64;
constexpr int64_t kLocalShare = 2;  // an unpacked tile's quads (K x 16 bytes): at most 1 / kLocalShare of local memory

bool applies(const Schedule& s, const MatmulShape& mm) {
  return !s.gpu && mm.int8_tiles() && mm.transposed && !mm.gathered_b && mm.m > 1 &&
         (mm.packed_b || mm.k * kTileCols <= s.local_memory_bytes / kLocalShare);
}

std::vector<NodeRef> lower(MatmulBuilder& mm) {
  KernelBuilder& kb = mm.kb;
  const Operands& o = mm.o;
  const int64_t batches = numel(mm.out_batch);
  Kernel& k = kb.kernel();
  const int64_t C = kTileCols, mg = std::min(kGroupRows, o.m);
  k.groups[0] = ceil_div(o.n, C);
  k.groups[1] = ceil_div(o.m, mg);
  k.groups[2] = batches;
  std::string batch = kb.fresh("batch"), n0 = kb.fresh("n0"), m0 = kb.fresh("m0"), m_end = kb.fresh("m_end");
  NodeRef batch_ref = ref(batch, kI64), n0_ref = ref(n0, kI64), m0_ref = ref(m0, kI64);
  std::vector<NodeRef> body{let(batch, builtin(Builtin::group_id, 2)), let(n0, imul(builtin(Builtin::group_id, 0), c_i64(C))),
                            let(m0, imul(builtin(Builtin::group_id, 1), c_i64(mg))),
                            let(m_end, min_(iadd(m0_ref, c_i64(mg)), c_i64(o.m)))};
  // columns past N repeat row N - 1 and are not stored
  WeightTile tile =
      o.b_scales >= 0
          ? packed_tile(iadd(imul(mm.batch_b(batch_ref), c_i64(o.n / C)), builtin(Builtin::group_id, 0)))
          : weight_tile(mm, [&](const NodeRef& c) { return mm.b_row(batch_ref, min_(iadd(n0_ref, c), c_i64(o.n - 1))); });
  body.insert(body.end(), tile.stmts.begin(), tile.stmts.end());
  const int rows = static_cast<int>(std::min<int64_t>(kPassRows, o.m));
  std::string r0 = kb.fresh("r0");
  NodeRef r0_ref = ref(r0, kI64);
  std::vector<NodeRef> per_pass;
  std::vector<std::string> a_blk(static_cast<size_t>(rows)), acc;
  for (int r = 0; r < rows; ++r) {  // rows past M read row M - 1 and are not stored
    a_blk[r] = kb.fresh("a_blk");
    per_pass.push_back(let(a_blk[r], mm.a_row_block(batch_ref, min_(iadd(r0_ref, c_i64(r)), c_i64(o.m - 1)))));
  }
  std::vector<NodeRef> loop = int8_rows(mm, tile, a_blk, acc);
  per_pass.insert(per_pass.end(), loop.begin(), loop.end());
  for (int r = 0; r < rows; ++r) {
    NodeRef m = iadd(r0_ref, c_i64(r));
    per_pass.push_back(if_then(lt(m, ref(m_end, kI64)), store_columns(mm, batch_ref, m, n0_ref, acc[r])));
  }
  body.push_back(for_loop(r0, m0_ref, ref(m_end, kI64), c_i64(rows), std::move(per_pass)));
  return body;
}

}  // namespace

const MatmulStrategy kInt8Gemm{"int8_gemm", applies, lower};

}  // namespace moat::jit::matmul
