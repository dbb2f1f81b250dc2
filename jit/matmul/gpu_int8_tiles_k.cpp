// GPU, q8_k A times a packed Q4_K weight (jit/weight_packing.h: per tile of 16 rows and
// super-block of 256, 32 vectors of quads — vector 8j + q: the low nibbles of sub-block
// 2j and the high nibbles of 2j + 1, elements 4q .. 4q + 3 — then each sub-block's 6-bit
// scales and mins a byte per row): the Q4_K tensors of a Q4_K_M file.
//
// The same arrangement as gpu_int8_tiles.cpp: a sub-group per tile for up to kMaxRows
// rows of A, staged in local memory (words of 4 quants, d_a, and each 32-element
// sub-block's quant sum); lane l of a sub-group of L >= 4 works on tile rows 4g .. 4g + 3
// and vectors q, q + L/4, ... of every super-block, one 16-byte load per step. Per
// sub-block pair: sc_2j x dp4a(low nibbles, A) + sc_2j+1 x dp4a(high nibbles, A) in
// integers, times d_a x d; the mins' term d_a x dmin x (m_2j sum_2j + m_2j+1 sum_2j+1)
// taken off once per pair, by the lanes of its vector q = 0. llama.cpp's
// vec_dot_q4_K_q8_1 computes the same sums per 32 elements.
#include <algorithm>

#include "jit/matmul/gpu_tiles.h"
#include "jit/weight_packing.h"

namespace moat::jit::matmul {

namespace {

constexpr int64_t kMaxRows = 8;
constexpr int64_t kQ8kBytes = 292;            // q8_k block: f32 d, 256 i8, 16 i16 sums
constexpr int64_t kRowBytes = 64 * 4 + 4 + 8 * 4;  // local bytes per super-block of an A row

int64_t rows_per_group(const Schedule& s, int64_t sb, int64_t m) {
  return std::min({kMaxRows, m, s.local_memory_bytes / (sb * kRowBytes)});
}

bool applies(const Schedule& s, const MatmulShape& mm) {
  return s.gpu && mm.packed_b && mm.b_dtype == ir::DType::q4_k && mm.a_dtype == ir::DType::q8_k && mm.n % kPackRows == 0 &&
         rows_per_group(s, mm.k / 256, std::max<int64_t>(mm.m, 1)) > 0;
}

// Byte `byte` (0..3) of word w, as i32.
NodeRef byte_of(const NodeRef& w, int byte) {
  return binary(BinaryOp::land, byte == 0 ? w : binary(BinaryOp::shr, w, c_i32(8 * byte)), c_i32(255));
}

std::vector<NodeRef> lower(MatmulBuilder& mm) {
  KernelBuilder& kb = mm.kb;
  const Operands& o = mm.o;
  Kernel& k = kb.kernel();
  const Schedule& s = mm.schedule();
  const int64_t sbs = o.k / 256, rows = rows_per_group(s, sbs, std::max<int64_t>(o.m, 1));
  const int64_t block_words = packed_block_bytes(o.b_dtype) / 4, scales_per = packed_block_scales(o.b_dtype);
  std::vector<NodeRef> body;
  const GpuTileLanes lanes = gpu_tile_lanes(mm, rows, body);
  const int64_t W = s.work_group_size, cluster = lanes.cluster;
  NodeRef batch_ref = lanes.batch, m0_ref = lanes.m0, item = builtin(Builtin::item_id, 0);

  // A's rows into local memory: words [row][super-block][64], d_a [row][super-block], the
  // quant sum of each 32-element sub-block [row][super-block][8] (rows past M: zeros).
  const int a_words = mm.local_buffer("a_words", ir::DType::i32, rows * sbs * 64);
  const int a_scales = mm.local_buffer("a_scales", ir::DType::f32, rows * sbs);
  const int a_sums = mm.local_buffer("a_sums", ir::DType::i32, rows * sbs * 8);
  auto a_block = [&](const NodeRef& r, const NodeRef& b) {  // q8_k block index of A row m0 + r (clamped)
    return iadd(mm.a_row_block(batch_ref, min_(iadd(m0_ref, r), c_i64(o.m - 1))), b);
  };
  auto valid = [&](const NodeRef& r) { return lt(iadd(m0_ref, r), c_i64(o.m)); };  // row m0 + r exists
  auto a_word = [&](const NodeRef& blk, const NodeRef& w) {  // word w of the block's quants
    return load_as(k, o.a, iadd(imul(blk, c_i64(kQ8kBytes / 4)), iadd(c_i64(1), w)), kI32);
  };
  {
    std::string i = kb.fresh("i");
    NodeRef i_ref = bounded_ref(i, 0, rows * sbs * 64 - 1);
    NodeRef r = idiv(i_ref, sbs * 64), b = idiv(irem(i_ref, sbs * 64), 64), w = irem(i_ref, 64);
    body.push_back(for_loop(i, item, c_i64(rows * sbs * 64), c_i64(W),
                            {store(k, a_words, i_ref, select(valid(r), a_word(a_block(r, b), w), c_i32(0)))}));
    std::string j = kb.fresh("j");
    NodeRef j_ref = bounded_ref(j, 0, rows * sbs * 8 - 1);
    NodeRef rj = idiv(j_ref, sbs * 8), bj = idiv(irem(j_ref, sbs * 8), 8), sj = irem(j_ref, 8);
    NodeRef sum = c_i32(0);
    for (int w8 = 0; w8 < 8; ++w8) sum = dot4_words(sum, c_i32(0x01010101), a_word(a_block(rj, bj), iadd(imul(sj, c_i64(8)), c_i64(w8))));
    body.push_back(for_loop(j, item, c_i64(rows * sbs * 8), c_i64(W), {store(k, a_sums, j_ref, select(valid(rj), sum, c_i32(0)))}));
    std::string d = kb.fresh("d");
    NodeRef d_ref = bounded_ref(d, 0, rows * sbs - 1);
    NodeRef rd = idiv(d_ref, sbs), bd = irem(d_ref, sbs);
    NodeRef d_a = load_as(k, o.a, imul(a_block(rd, bd), c_i64(kQ8kBytes / 4)), kF32);
    body.push_back(for_loop(d, item, c_i64(rows * sbs), c_i64(W), {store(k, a_scales, d_ref, select(valid(rd), d_a, c_f32(0.0)))}));
    body.push_back(barrier());
  }

  std::string g = kb.fresh("g"), b = kb.fresh("b"), v = kb.fresh("v"), wv = kb.fresh("w");
  NodeRef g_ref = bounded_ref(g, 0, 3), b_ref = bounded_ref(b, 0, sbs - 1), v_ref = bounded_ref(v, 0, 31);
  std::vector<NodeRef> per_group;
  const std::vector<std::vector<std::string>> acc = gpu_tile_accumulators(mm, rows, per_group);
  // per super-block: the 4 rows' d and dmin (f16, one 8-byte load each)
  std::vector<NodeRef> per_block;
  NodeRef tile_block = iadd(imul(lanes.tile, c_i64(sbs)), b_ref);
  std::string dv = kb.fresh("d"), mv = kb.fresh("dmin");
  NodeRef scale_words = imul(tile_block, c_i64(scales_per / 2));
  per_block.push_back(load_vector(k, dv, o.b_scales, iadd(scale_words, imul(g_ref, c_i64(2))), {Scalar::i32, 2}));
  per_block.push_back(load_vector(k, mv, o.b_scales, iadd(scale_words, iadd(c_i64(kPackRows / 2), imul(g_ref, c_i64(2)))),
                                  {Scalar::i32, 2}));
  std::vector<NodeRef> dw(4), dmw(4);
  for (int j = 0; j < 4; ++j) {
    std::string d = kb.fresh("dw"), dm = kb.fresh("dmw");
    per_block.push_back(let(d, f16_of_words(dv, j)));
    per_block.push_back(let(dm, f16_of_words(mv, j)));
    dw[static_cast<size_t>(j)] = ref(d, kF32);
    dmw[static_cast<size_t>(j)] = ref(dm, kF32);
  }

  // per vector v = 8 pair + quad: the 4 rows' quads, the pair's scales and mins (a byte per row)
  std::vector<NodeRef> step;
  NodeRef block_word = imul(tile_block, c_i64(block_words));
  std::string pair = kb.fresh("pair"), quad = kb.fresh("quad");
  step.push_back(let(pair, idiv(v_ref, 8)));
  step.push_back(let(quad, irem(v_ref, 8)));
  NodeRef pair_ref = bounded_ref(pair, 0, 3), quad_ref = bounded_ref(quad, 0, 7);
  step.push_back(load_vector(k, wv, o.b, iadd(block_word, iadd(imul(v_ref, c_i64(16)), imul(g_ref, c_i64(4)))), {Scalar::i32, 4}));
  auto bytes_word = [&](int64_t region, int sub) {  // word of rows 4g.. of sub-block 2 pair + sub in a 128-byte region
    NodeRef sb = iadd(imul(pair_ref, c_i64(2)), c_i64(sub));
    return load_as(k, o.b, iadd(block_word, iadd(c_i64(region / 4), iadd(imul(sb, c_i64(4)), g_ref))), kI32);
  };
  std::string sc0 = kb.fresh("sc"), sc1 = kb.fresh("sc"), mn0 = kb.fresh("mn"), mn1 = kb.fresh("mn");
  step.push_back(let(sc0, bytes_word(2048, 0)));
  step.push_back(let(sc1, bytes_word(2048, 1)));
  step.push_back(let(mn0, bytes_word(2176, 0)));
  step.push_back(let(mn1, bytes_word(2176, 1)));
  for (int64_t r = 0; r < rows; ++r) {
    NodeRef row_sb = iadd(imul(c_i64(r), c_i64(sbs)), b_ref);
    std::string al = kb.fresh("a_lo"), ah = kb.fresh("a_hi"), da = kb.fresh("da"), s0 = kb.fresh("as"), s1 = kb.fresh("as");
    NodeRef words_at = imul(row_sb, c_i64(64));
    step.push_back(let(al, load(k, a_words, iadd(words_at, iadd(imul(pair_ref, c_i64(16)), quad_ref)))));
    step.push_back(let(ah, load(k, a_words, iadd(words_at, iadd(imul(pair_ref, c_i64(16)), iadd(c_i64(8), quad_ref))))));
    step.push_back(let(da, load(k, a_scales, row_sb)));
    NodeRef sums_at = iadd(imul(row_sb, c_i64(8)), imul(pair_ref, c_i64(2)));
    step.push_back(let(s0, load(k, a_sums, sums_at)));
    step.push_back(let(s1, load(k, a_sums, iadd(sums_at, c_i64(1)))));
    for (int j = 0; j < 4; ++j) {
      NodeRef word = ref(lane_name(wv, j), kI32);
      NodeRef low = binary(BinaryOp::land, word, c_i32(0x0F0F0F0F));
      NodeRef high = binary(BinaryOp::land, binary(BinaryOp::shr, word, c_i32(4)), c_i32(0x0F0F0F0F));
      NodeRef isum = add(mul(byte_of(ref(sc0, kI32), j), dot4_words(c_i32(0), low, ref(al, kI32))),
                         mul(byte_of(ref(sc1, kI32), j), dot4_words(c_i32(0), high, ref(ah, kI32))));
      const std::string& a = acc[static_cast<size_t>(r)][static_cast<size_t>(j)];
      NodeRef next = fma(cast(kF32, isum), mul(ref(da, kF32), dw[static_cast<size_t>(j)]), ref(a, kF32));
      // d_a x dmin x (m_2p sum_2p + m_2p+1 sum_2p+1), taken off once per pair (its quad 0)
      NodeRef msum = add(mul(byte_of(ref(mn0, kI32), j), ref(s0, kI32)), mul(byte_of(ref(mn1, kI32), j), ref(s1, kI32)));
      NodeRef minus = fma(unary(UnaryOp::neg, cast(kF32, msum)), mul(ref(da, kF32), dmw[static_cast<size_t>(j)]), next);
      next = select(binary(BinaryOp::eq, quad_ref, c_i64(0)), minus, next);
      step.push_back(assign(a, next));
    }
  }
  std::vector<NodeRef> vectors = loop_or_let(v, lanes.q, 32, cluster, std::move(step));
  per_block.insert(per_block.end(), vectors.begin(), vectors.end());
  per_group.push_back(for_loop(b, c_i64(0), c_i64(sbs), c_i64(1), std::move(per_block)));

  // the 4-row group's lanes add up; its first lane stores the rows of A that exist
  gpu_tile_store(mm, lanes, g, acc, std::move(per_group), body);
  return body;
}

}  // namespace

bool gpu_reads_packed_k(const Schedule& s, ir::DType b_dtype, int64_t k) {
  return s.gpu && b_dtype == ir::DType::q4_k && k % 256 == 0 && rows_per_group(s, k / 256, 1) > 0;
}

const MatmulStrategy kGpuInt8TilesK{"gpu_int8_tiles_k", applies, lower};

}  // namespace moat::jit::matmul
