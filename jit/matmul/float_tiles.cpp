// CPU, a float weight (f32 / f16 / bf16) read whole, in tiles of 16 rows
// (jit/weight_packing.h; the lowering tiles a weight only where every use is a matmul
// this strategy or float_expert_tiles.cpp takes, and the caller lets it copy the weight,
// jit/lower.h's LowerOptions): B [.., N, K] transposed, A f32 [.., M, K]. A work-group
// takes a block of a matrix's tiles and a block of rows of A, in float_tiles.h's passes
// of 8, 4, 2 and 1 rows (4, 2, 1 with narrower vectors than AVX-512's). A pass of 8 rows
// multiplies each converted vector of B into 8 rows and ends with vector stores, where a
// dot product per output (tiled.cpp) ends every output with a horizontal sum: about 50
// more vector instructions per 16 outputs beside their 256 multiply-adds at K 256.
#include "jit/matmul/float_tiles.h"

#include <algorithm>
#include <bit>

#include "support/error.h"

namespace moat::jit::matmul {

namespace {

// Vectors of 16 f32 a pass accumulates at once (rows x tiles): half of AVX-512's 32
// registers; 6 (12 of 16 registers) where a vector takes two (AVX2).
constexpr int64_t kAccumulators = 16, kAccumulatorsNarrow = 6;
constexpr int64_t kMaxRowBlock = 64;  // rows of A a work-group takes at most
constexpr int64_t kMinGroups = 16;    // work-groups a launch gets where blocks can shrink to give them

// An empty product (no rows or batches) is per_output's, which reads no B.
bool applies(const Schedule&, const MatmulShape& mm) {
  return mm.float_tiles_b && !mm.gathered_b && mm.m > 0 && mm.batches > 0;
}

// Rows per pass, largest first: none above the accumulators (AVX2: 4).
std::vector<int64_t> pass_rows(const Schedule& s) {
  if (s.vector_lanes >= kTileLanes) return {8, 4, 2, 1};
  return {4, 2, 1};
}

// Whether `rows` rows, taken in passes of the sizes of `sizes` (largest first, the
// largest as often as it fits, then each smaller once at most), take a pass of `size`.
bool takes_pass(const std::vector<int64_t>& sizes, int64_t rows, int64_t size) {
  for (int64_t s : sizes) {
    if (s == size) return rows >= s;
    rows -= rows / s * s;
  }
  return false;
}

std::vector<NodeRef> lower(MatmulBuilder& mm) {
  KernelBuilder& kb = mm.kb;
  const Operands& o = mm.o;
  const Schedule& s = mm.schedule();
  MOAT_INTERNAL_CHECK(!s.gpu && o.transposed && o.n % kTileLanes == 0 && o.scales < 0 && o.a_dtype == ir::DType::f32 &&
                          mm.gather_indices < 0,
                      "float tiles: a matmul the lowering should not have tiled (n ", o.n, ", A ", ir::dtype_name(o.a_dtype),
                      ")");
  Kernel& k = kb.kernel();
  const int64_t batches = numel(mm.out_batch), tiles = o.n / kTileLanes, widest = pass_rows(s).front();
  // Blocks of tiles and of rows as large as give kMinGroups work-groups (with fewer than
  // 4 rows a block of tiles keeps 2 where it can: two chains of multiply-adds a pass).
  int64_t block = float_block_tiles(tiles), row_block = std::min(o.m, kMaxRowBlock);
  auto groups = [&] { return batches * ceil_div(o.m, row_block) * (tiles / block); };
  const int64_t least_block = o.m >= 4 ? 1 : 2;
  while (groups() < kMinGroups && block > least_block) block /= 2;
  while (groups() < kMinGroups && row_block > widest) row_block = ceil_div(row_block / 2, widest) * widest;
  const int64_t row_blocks = ceil_div(o.m, row_block), tile_blocks = tiles / block;
  k.groups[0] = groups();

  std::string batch = kb.fresh("batch"), rb = kb.fresh("rb"), g = kb.fresh("g"), e = kb.fresh("e"),
              end_rows = kb.fresh("end_rows");
  NodeRef gid = builtin(Builtin::group_id, 0);
  NodeRef batch_ref = bounded_ref(batch, 0, batches - 1);
  std::vector<NodeRef> body{let(batch, idiv(gid, row_blocks * tile_blocks)),
                            let(rb, irem(idiv(gid, tile_blocks), row_blocks)),
                            let(g, irem(gid, tile_blocks)), let(e, mm.batch_b(batch_ref))};
  NodeRef matrix = bounded_ref(e, 0, std::max<int64_t>(1, numel(mm.b_batch)) - 1);
  NodeRef first_row = imul(bounded_ref(rb, 0, row_blocks - 1), c_i64(row_block));
  body.push_back(let(end_rows, min_(iadd(first_row, c_i64(row_block)), c_i64(o.m))));
  NodeRef t0 = imul(bounded_ref(g, 0, tile_blocks - 1), c_i64(block));
  // passes of the widest size while that many rows are left, then of each smaller size,
  // those the blocks of rows take (every block has row_block rows but the last): the
  // kernel of a decode step of 8 sequences has the passes of 8 only
  const int64_t last_rows = o.m - (row_blocks - 1) * row_block;
  NodeRef begin = first_row;
  for (int64_t size : pass_rows(s)) {
    if (!takes_pass(pass_rows(s), row_block, size) && !takes_pass(pass_rows(s), last_rows, size)) continue;
    std::string r0 = kb.fresh("r0"), end = kb.fresh("end");
    body.push_back(let(end, iadd(begin, imul(idiv(binary(BinaryOp::sub, ref(end_rows, kI64), begin), size), c_i64(size)))));
    std::vector<TileRow> rows;
    for (int64_t i = 0; i < size; ++i) rows.push_back({batch_ref, iadd(bounded_ref(r0, 0, o.m - 1), c_i64(i))});
    std::vector<NodeRef> per_pass{float_tile_pass(mm, rows, matrix, t0, block)};
    body.push_back(for_loop(r0, begin, ref(end, kI64), c_i64(size), std::move(per_pass)));
    begin = ref(end, kI64);
  }
  return body;
}

}  // namespace

int64_t float_block_tiles(int64_t tiles) {
  int64_t c = 8;
  while (tiles % c != 0) c /= 2;
  return c;
}

NodeRef float_tile_pass(MatmulBuilder& mm, const std::vector<TileRow>& rows, const NodeRef& matrix, const NodeRef& t0,
                        int64_t block_tiles) {
  KernelBuilder& kb = mm.kb;
  const Operands& o = mm.o;
  Kernel& k = kb.kernel();
  const Type t = kF32.with_lanes(static_cast<int>(kTileLanes));
  const int64_t tiles = o.n / kTileLanes;
  const int64_t accumulators = mm.schedule().vector_lanes >= kTileLanes ? kAccumulators : kAccumulatorsNarrow;
  const auto fit = static_cast<uint64_t>(std::max<int64_t>(1, accumulators / static_cast<int64_t>(rows.size())));
  const int64_t block = std::min(block_tiles, static_cast<int64_t>(std::bit_floor(fit)));
  std::string kc = kb.fresh("k"), tc = kb.fresh("t");
  NodeRef kk = ref(kc, kI64), first = ref(tc, kI64);
  std::vector<NodeRef> stmts, dot;
  std::vector<std::string> a_base, acc;  // acc[r * block + c]
  for (const TileRow& row : rows) {
    a_base.push_back(kb.fresh("a_row"));
    stmts.push_back(let(a_base.back(), mm.a_row(row.batch, row.m)));
    for (int64_t c = 0; c < block; ++c) {
      acc.push_back(kb.fresh("acc"));
      stmts.push_back(var(acc.back(), broadcast(c_f32(0.0), static_cast<int>(kTileLanes))));
    }
  }
  std::vector<std::string> av;
  for (size_t r = 0; r < rows.size(); ++r) {
    av.push_back(kb.fresh("a"));
    dot.push_back(let(av.back(), broadcast(mm.a_value(ref(a_base[r], kI64), kk, 1), static_cast<int>(kTileLanes))));
  }
  for (int64_t c = 0; c < block; ++c) {
    std::string bv = kb.fresh("bv");
    NodeRef tile = iadd(imul(matrix, c_i64(tiles)), iadd(first, c_i64(c)));
    NodeRef at = imul(iadd(imul(tile, c_i64(o.k)), kk), c_i64(kTileLanes));
    dot.push_back(let(bv, cast(t, load(k, o.b, at, static_cast<int>(kTileLanes)))));
    for (size_t r = 0; r < rows.size(); ++r) {
      const std::string& a = acc[r * static_cast<size_t>(block) + static_cast<size_t>(c)];
      dot.push_back(assign(a, fma(ref(av[r], t), ref(bv, t), ref(a, t))));
    }
  }
  stmts.push_back(for_loop(kc, c_i64(0), c_i64(o.k), c_i64(1), std::move(dot)));
  for (size_t r = 0; r < rows.size(); ++r)
    for (int64_t c = 0; c < block; ++c)
      stmts.push_back(mm.store_out(rows[r].batch, rows[r].m, imul(iadd(first, c_i64(c)), c_i64(kTileLanes)),
                                   ref(acc[r * static_cast<size_t>(block) + static_cast<size_t>(c)], t)));
  return for_loop(tc, t0, iadd(t0, c_i64(block_tiles)), c_i64(block), std::move(stmts));
}

const MatmulStrategy kFloatTiles{"float_tiles", applies, lower};

}  // namespace moat::jit::matmul
