// GPU, q8_0 A times a packed Q8_0 / Q4_0 / Q5_0 / Q4_1 / Q5_1 weight (jit/weight_packing.h: tiles of 16 rows,
// each block's 4-byte quads of the 16 rows side by side): decode GEMV, prefill and MoE
// experts alike.
//
// A sub-group takes one tile (16 output columns) for a chunk of up to kMaxRows rows of
// A; the work-group first copies those rows into local memory as words of 4 quants
// with their scales. In a sub-group of L >= 4 lanes, lane l works on tile rows
// 4g .. 4g + 3 (g = l / (L / 4)), on vector v of every P-th block: one 16-byte load
// (ld.global.nc.v4.u32) gives it one quad of each of its 4 rows, and a warp's 32 lanes
// read 512 consecutive bytes. Products are integer (dot4_words: dp4a), scaled per block
// in f32; the lanes of a 4-row group add their sums in a clustered sub-group reduction
// (shfl.sync.bfly inside clusters of L / 4 lanes). A sub-group of one work-item (OpenCL
// 1.2, PoCL) walks all 4 row groups and vectors itself. llama.cpp's mul_mat_vec_q
// splits a row's blocks over a warp the same way, on the file's layout.
#include <algorithm>

#include "jit/matmul/gpu_tiles.h"
#include "jit/weight_packing.h"

namespace moat::jit::matmul {

namespace {

constexpr int64_t kMaxRows = 8;        // rows of A per work-group (accumulators: 4 per row and lane)
constexpr int64_t kRowBytes = 8 * 4 + 8;  // local bytes per block of an A row: 8 words, its f32 scale (and d x sum)

// Rows of A a work-group can stage for a K of kb blocks, at most kMaxRows; 0: none fit.
int64_t rows_per_group(const Schedule& s, int64_t kb, int64_t m) {
  return std::min({kMaxRows, m, s.local_memory_bytes / (kb * kRowBytes)});
}

bool gpu_type(ir::DType b) {
  return b == ir::DType::q8_0 || b == ir::DType::q4_0 || b == ir::DType::q5_0 || b == ir::DType::q4_1 || b == ir::DType::q5_1;
}

// The weights' stored offset (q8_0 + 128, q4_0 + 8, q5_0 + 16; q4_1 / q5_1 none: a min).
int32_t stored_offset(ir::DType b) {
  return b == ir::DType::q8_0 ? 128 : b == ir::DType::q4_0 ? 8 : b == ir::DType::q5_0 ? 16 : 0;
}

bool applies(const Schedule& s, const MatmulShape& mm) {
  return s.gpu && mm.packed_b && gpu_type(mm.b_dtype) && mm.a_dtype == ir::DType::q8_0 && mm.n % kPackRows == 0 &&
         rows_per_group(s, mm.k / 32, std::max<int64_t>(mm.m, 1)) > 0;
}

// The word (4 quants, little-endian) at byte `at` of q8_0 A: bytes 0..2 unsigned, the
// top one signed times 2^24 (no shift into the sign bit on the C-like targets).
NodeRef a_word(Kernel& k, int a, const NodeRef& at) {
  auto byte = [&](int i, Scalar s) { return cast(kI32, load_as(k, a, i == 0 ? at : iadd(at, c_i64(i)), {s, 1})); };
  NodeRef w = byte(0, Scalar::u8);
  w = binary(BinaryOp::lor, w, binary(BinaryOp::shl, byte(1, Scalar::u8), c_i32(8)));
  w = binary(BinaryOp::lor, w, binary(BinaryOp::shl, byte(2, Scalar::u8), c_i32(16)));
  return binary(BinaryOp::lor, w, mul(byte(3, Scalar::i8), c_i32(1 << 24)));
}

std::vector<NodeRef> lower(MatmulBuilder& mm) {
  KernelBuilder& kb = mm.kb;
  const Operands& o = mm.o;
  Kernel& k = kb.kernel();
  const Schedule& s = mm.schedule();
  // Nibble types hold a block's 32 values as 4 vectors of low and high nibbles (q5: and a
  // fifth vector of fifth bits); Q8_0 as 8 vectors of bytes. V: the vectors lanes split.
  const bool nibbles = o.b_dtype != ir::DType::q8_0, q5 = o.b_dtype == ir::DType::q5_0 || o.b_dtype == ir::DType::q5_1;
  const bool with_min = packed_with_mins(o.b_dtype);
  const int32_t offset_byte = stored_offset(o.b_dtype);
  const int64_t blocks = o.k / 32, V = nibbles ? 4 : 8, vectors = packed_vectors(o.b_dtype);
  const int64_t rows = rows_per_group(s, blocks, std::max<int64_t>(o.m, 1));
  std::vector<NodeRef> body;
  const GpuTileLanes lanes = gpu_tile_lanes(mm, rows, body);
  const int64_t W = s.work_group_size, cluster = lanes.cluster;
  // the first vector, its step, and the blocks taken in parallel
  const int64_t v_step = std::min(cluster, V), P = cluster >= V ? cluster / V : 1;
  NodeRef batch_ref = lanes.batch, m0_ref = lanes.m0, item = builtin(Builtin::item_id, 0);

  // A's rows m0 .. m0 + rows - 1 into local memory: words [row][block][8], scales [row][block]
  // (rows past M: zeros, their addresses clamped to row M - 1).
  const int a_words = mm.local_buffer("a_words", ir::DType::i32, rows * blocks * 8);
  const int a_scales = mm.local_buffer("a_scales", ir::DType::f32, rows * blocks);
  const int a_sums = with_min ? mm.local_buffer("a_sums", ir::DType::f32, rows * blocks) : -1;  // d_a x the quants' sum
  const int64_t a_bytes = ir::dtype_block_bytes(ir::DType::q8_0);
  auto a_block = [&](const NodeRef& r, const NodeRef& b) {
    NodeRef m = min_(iadd(m0_ref, r), c_i64(o.m - 1));
    return iadd(mm.a_row_block(batch_ref, m), b);
  };
  auto valid = [&](const NodeRef& r) { return lt(iadd(m0_ref, r), c_i64(o.m)); };  // row m0 + r exists
  {
    std::string i = kb.fresh("i"), ws = kb.fresh("w");
    NodeRef i_ref = bounded_ref(i, 0, rows * blocks * 8 - 1);
    NodeRef r = idiv(i_ref, blocks * 8), b = idiv(irem(i_ref, blocks * 8), 8), w = irem(i_ref, 8);
    NodeRef at = iadd(imul(a_block(r, b), c_i64(a_bytes)), iadd(c_i64(2), imul(w, c_i64(4))));
    body.push_back(for_loop(i, item, c_i64(rows * blocks * 8), c_i64(W),
                            {store(k, a_words, i_ref, select(valid(r), a_word(k, o.a, at), c_i32(0)))}));
    std::string j = kb.fresh("j");
    NodeRef j_ref = bounded_ref(j, 0, rows * blocks - 1);
    NodeRef rj = idiv(j_ref, blocks), bj = irem(j_ref, blocks);
    std::string d = kb.fresh("d_a");
    std::vector<NodeRef> per_block{let(d, select(valid(rj), qscale(k, o.a, a_block(rj, bj)), c_f32(0.0))),
                                   store(k, a_scales, j_ref, ref(d, kF32))};
    if (with_min) {  // the 32 quants' sum: dot4_words with ones over the block's 8 words
      NodeRef first = iadd(imul(a_block(rj, bj), c_i64(a_bytes)), c_i64(2)), sum = c_i32(0);
      for (int w8 = 0; w8 < 8; ++w8) sum = dot4_words(sum, c_i32(0x01010101), a_word(k, o.a, iadd(first, c_i64(4 * w8))));
      per_block.push_back(store(k, a_sums, j_ref, mul(ref(d, kF32), cast(kF32, sum))));
    }
    body.push_back(for_loop(j, item, c_i64(rows * blocks), c_i64(W), std::move(per_block)));
    body.push_back(barrier());
  }

  // Per 4-row group g of the tile: 4 accumulators per row of A.
  std::string g = kb.fresh("g"), b = kb.fresh("b"), v = kb.fresh("v"), wv = kb.fresh("w");
  NodeRef g_ref = bounded_ref(g, 0, 3), b_ref = bounded_ref(b, 0, blocks - 1), v_ref = bounded_ref(v, 0, V - 1);
  std::vector<NodeRef> per_group;
  const std::vector<std::vector<std::string>> acc = gpu_tile_accumulators(mm, rows, per_group);
  std::vector<NodeRef> step;
  NodeRef tile_block = iadd(imul(lanes.tile, c_i64(blocks)), b_ref);
  auto vector_words = [&](const NodeRef& vector) {  // word of row 4g of the tile-block's vector
    return iadd(imul(iadd(imul(tile_block, c_i64(vectors)), vector), c_i64(16)), imul(g_ref, c_i64(4)));
  };
  step.push_back(load_vector(k, wv, o.b, vector_words(v_ref), {Scalar::i32, 4}));
  std::string qh = kb.fresh("qh");
  if (q5) step.push_back(load_vector(k, qh, o.b, vector_words(c_i64(4)), {Scalar::i32, 4}));  // fifth bits by quad
  // the 4 rows' f16 scales: one 8-byte load, two halves per word
  std::string sv = kb.fresh("scales");
  const int64_t scales_per_block = packed_block_scales(o.b_dtype);
  step.push_back(load_vector(k, sv, o.b_scales, iadd(imul(tile_block, c_i64(scales_per_block / 2)), imul(g_ref, c_i64(2))),
                             {Scalar::i32, 2}));
  std::string mv = kb.fresh("mins");  // q4_1 / q5_1: the 4 rows' f16 mins, 16 slots after the scales
  if (with_min)
    step.push_back(load_vector(k, mv, o.b_scales,
                               iadd(imul(tile_block, c_i64(scales_per_block / 2)), iadd(c_i64(kPackRows / 2), imul(g_ref, c_i64(2)))),
                               {Scalar::i32, 2}));
  std::vector<NodeRef> mw(4);
  std::vector<NodeRef> lo(4), hi(4), dw(4);
  for (int j = 0; j < 4; ++j) {
    NodeRef word = ref(lane_name(wv, j), kI32);
    std::string d = kb.fresh("dw"), mn = kb.fresh("mw");
    step.push_back(let(d, f16_of_words(sv, j)));
    dw[static_cast<size_t>(j)] = ref(d, kF32);
    if (with_min) {
      step.push_back(let(mn, f16_of_words(mv, j)));
      mw[static_cast<size_t>(j)] = ref(mn, kF32);
    }
    if (!nibbles) {
      lo[static_cast<size_t>(j)] = word;  // quants + 128
      continue;
    }
    // elements 4v.. (low nibbles) and 16 + 4v.. (high); q5: bit 4 of each byte from the
    // fifth-bit word, bit q of byte i for quad q (weight_packing.h): << (4 - v), >> v
    NodeRef low = binary(BinaryOp::land, word, c_i32(0x0F0F0F0F));
    NodeRef high = binary(BinaryOp::land, binary(BinaryOp::shr, word, c_i32(4)), c_i32(0x0F0F0F0F));
    if (q5) {
      NodeRef bits = ref(lane_name(qh, j), kI32), v32 = cast(kI32, v_ref);
      low = binary(BinaryOp::lor, low, binary(BinaryOp::land, binary(BinaryOp::shl, bits, sub(c_i32(4), v32)), c_i32(0x10101010)));
      high = binary(BinaryOp::lor, high, binary(BinaryOp::land, binary(BinaryOp::shr, bits, v32), c_i32(0x10101010)));
    }
    std::string l = kb.fresh("lo"), h = kb.fresh("hi");
    step.push_back(let(l, low));
    step.push_back(let(h, high));
    lo[static_cast<size_t>(j)] = ref(l, kI32);
    hi[static_cast<size_t>(j)] = ref(h, kI32);
  }
  const int32_t offset_word = static_cast<int32_t>(0x01010101u * static_cast<uint32_t>(offset_byte));
  for (int64_t r = 0; r < rows; ++r) {
    NodeRef at = imul(iadd(imul(c_i64(r), c_i64(blocks)), b_ref), c_i64(8));
    NodeRef a_at = iadd(imul(c_i64(r), c_i64(blocks)), b_ref);
    std::string al = kb.fresh("a_lo"), ah = kb.fresh("a_hi"), off = kb.fresh("off"), da = kb.fresh("da"), as = kb.fresh("as");
    step.push_back(let(al, load(k, a_words, iadd(at, v_ref))));
    if (nibbles) step.push_back(let(ah, load(k, a_words, iadd(at, iadd(v_ref, c_i64(4))))));
    // the stored offset times the quants' sum, taken off every product
    NodeRef offset = c_i32(0);
    if (offset_byte != 0) {
      offset = dot4_words(c_i32(0), c_i32(offset_word), ref(al, kI32));
      if (nibbles) offset = dot4_words(offset, c_i32(offset_word), ref(ah, kI32));
    }
    step.push_back(let(off, offset));
    step.push_back(let(da, load(k, a_scales, a_at)));
    if (with_min) step.push_back(let(as, load(k, a_sums, a_at)));
    for (int j = 0; j < 4; ++j) {
      NodeRef sum = dot4_words(c_i32(0), lo[static_cast<size_t>(j)], ref(al, kI32));
      if (nibbles) sum = dot4_words(sum, hi[static_cast<size_t>(j)], ref(ah, kI32));
      const std::string& a = acc[static_cast<size_t>(r)][static_cast<size_t>(j)];
      NodeRef scale = mul(ref(da, kF32), dw[static_cast<size_t>(j)]);
      NodeRef next = fma(cast(kF32, sub(sum, ref(off, kI32))), scale, ref(a, kF32));
      if (with_min)  // m_w x d_a x sum(a), once per block: by the lanes of vector 0
        next = select(binary(BinaryOp::eq, v_ref, c_i64(0)), fma(mw[static_cast<size_t>(j)], ref(as, kF32), next), next);
      step.push_back(assign(a, next));
    }
  }
  NodeRef v0 = cluster >= V ? irem(lanes.q, V) : lanes.q;
  NodeRef p0 = cluster >= V ? idiv(lanes.q, V) : c_i64(0);
  per_group.push_back(for_loop(b, p0, c_i64(blocks), c_i64(P), loop_or_let(v, v0, V, v_step, std::move(step))));

  // the 4-row group's lanes add up; its first lane stores the rows of A that exist
  gpu_tile_store(mm, lanes, g, acc, std::move(per_group), body);
  return body;
}

}  // namespace

bool gpu_reads_packed(const Schedule& s, ir::DType b_dtype, const std::vector<int64_t>& shape) {
  if (shape.size() < 2 || shape[shape.size() - 2] % kPackRows != 0) return false;
  const int64_t k = shape.back();
  return (s.gpu && gpu_type(b_dtype) && k % 32 == 0 && rows_per_group(s, k / 32, 1) > 0) || gpu_reads_packed_k(s, b_dtype, k);
}

const MatmulStrategy kGpuInt8Tiles{"gpu_int8_tiles", applies, lower};

}  // namespace moat::jit::matmul
