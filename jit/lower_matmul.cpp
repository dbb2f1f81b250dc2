// matmul: out[.., m, n] = sum_k A[.., m, k] * B(k, n), batch dimensions broadcast.
//
// CPU schedule (B transposed, the weight layout [.., N, K]): a work-group computes
// `matmul_cols` outputs n for `matmul_rows` rows m of A; each chunk of B's row n is
// loaded (and dequantised, for Q8_0 / Q4_0 / Q4_K / Q6_K: 32 elements at a time in
// registers; for FP8: converted and scaled by its 128x128 block scale) once and used
// for every row of the tile, accumulating in f32 vectors of `vector_lanes` lanes (32
// for quantised chunks) with a scalar tail for K not a multiple of the width. B
// [.., K, N] (not transposed, activations only) and the GPU schedule use one scalar
// dot product per output.
//
// A q8_0 A (activations quantised for a Q8_0 / Q4_0 weight, ir/quant.h) is read with
// `dequant`, except on the CPU with a Q8_0 / Q4_0 B, where blocks multiply in integers
// (VNNI where the CPU has it): a GEMV of `qdot`s, or `dot4` over 16 weight rows at a
// time — read from the packed layout (jit/weight_packing.h) when the lowering packed B,
// else laid out in local memory per work-group (int8_gemm, grouped_experts_int8,
// int8_gemv_packed).
#include <algorithm>

#include "jit/lower_kernels.h"
#include "jit/weight_packing.h"
#include "support/error.h"

namespace moat::jit {

namespace {

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Linear index of the batch of an operand with batch shape `shape` for the output
// batch index `idx` (right-aligned numpy broadcasting; size-1 dims read index 0).
NodeRef batch_index(const std::vector<NodeRef>& out_idx, const std::vector<int64_t>& shape) {
  std::vector<NodeRef> idx(shape.size());
  const size_t offset = out_idx.size() - shape.size();
  for (size_t d = 0; d < shape.size(); ++d) idx[d] = shape[d] == 1 ? c_i64(0) : out_idx[offset + d];
  return linear_index(idx, shape);
}

struct Operands {
  int a = -1, b = -1, scales = -1;  // kernel buffers
  int b_scales = -1;                 // B in the packed layout (jit/weight_packing.h): b holds its quads
  ir::DType a_dtype = ir::DType::f32, b_dtype = ir::DType::f32;
  int64_t m = 0, n = 0, k = 0;
  bool transposed = false;
  int64_t block_rows = 0, block_cols = 0;  // fp8 scale blocks
  int64_t scale_cols = 0;                  // columns of the scale matrix
};

class MatmulLowering {
 public:
  MatmulLowering(LowerContext& ctx, ir::NodeId id, int out) : ctx_(ctx), kb_(ctx), id_(id), out_(out) {}

  PlanKernel run() {
    const ir::Node& node = ctx_.node(id_);
    const auto& a_shape = ctx_.shape(node.operands[0]);
    const auto& b_shape = ctx_.shape(node.operands[1]);
    const auto& o_shape = ctx_.shape(id_);
    o_.transposed = ir::attr_bool(node, "b_transposed");
    o_.m = a_shape[a_shape.size() - 2];
    o_.k = a_shape.back();
    o_.n = o_shape.back();
    o_.b_dtype = ctx_.node(node.operands[1]).type.dtype;
    o_.a_dtype = ctx_.node(node.operands[0]).type.dtype;
    o_.a = kb_.use(ctx_.buffer_of.at(static_cast<size_t>(node.operands[0])), false);
    const ir::NodeId b_node = node.operands[1];
    if (ctx_.buffer_of.at(static_cast<size_t>(b_node)) >= 0) {
      o_.b = kb_.use(ctx_.buffer_of[static_cast<size_t>(b_node)], false);
      if (ctx_.packed_scales_of[static_cast<size_t>(b_node)] >= 0)
        o_.b_scales = kb_.use(ctx_.packed_scales_of[static_cast<size_t>(b_node)], false);
    } else {
      // gather(table, idx): B's batch (i.., j..) is table[idx[i..], j..]
      MOAT_INTERNAL_CHECK(is_gathered_weight(ctx_.graph, b_node) && node.operands.size() == 2,
                          "matmul B ", ir::describe(ctx_.graph, b_node), " has no buffer");
      const ir::Node& gather = ctx_.node(b_node);
      gather_indices_ = gather.operands[1];
      table_shape_ = ctx_.shape(gather.operands[0]);
      o_.b = kb_.use(ctx_.buffer_of.at(static_cast<size_t>(gather.operands[0])), false);
      if (ctx_.packed_scales_of[static_cast<size_t>(gather.operands[0])] >= 0)
        o_.b_scales = kb_.use(ctx_.packed_scales_of[static_cast<size_t>(gather.operands[0])], false);
    }
    if (node.operands.size() == 3) {
      o_.scales = kb_.use(ctx_.buffer_of.at(static_cast<size_t>(node.operands[2])), false);
      const auto& block = ir::attr_ints(node, "block");
      o_.block_rows = block[0];
      o_.block_cols = block[1];
      o_.scale_cols = ctx_.shape(node.operands[2]).back();
    }
    out_batch_.assign(o_shape.begin(), o_shape.end() - 2);
    a_batch_.assign(a_shape.begin(), a_shape.end() - 2);
    b_batch_.assign(b_shape.begin(), b_shape.end() - 2);
    const int64_t batches = numel(out_batch_);

    std::vector<NodeRef> body;
    const Schedule& s = ctx_.schedule;
    if (!s.gpu && grouped_experts_apply(batches)) {
      body = int8_dot() ? grouped_experts_int8(batches) : grouped_experts(batches);
    } else if (!s.gpu && int8_gemm_apply()) {
      body = int8_gemm(batches);
    } else if (o_.b_scales >= 0) {  // a packed weight: only the int8 kernels read its layout
      body = int8_gemv_packed(batches);
    } else if (!s.gpu && o_.transposed && o_.n > 0 && o_.m > 0) {
      body = tiled(batches);
    } else if (!s.gpu && !o_.transposed && !ir::is_quantised(o_.b_dtype) && o_.scales < 0 && o_.m > 0 &&
               o_.n >= s.vector_lanes) {
      body = tiled_untransposed(batches);
    } else if (s.gpu && o_.k >= 128 && batches * o_.m * o_.n > 0) {
      body = split_k(batches);
    } else {
      body = per_output(batches);
    }
    std::string prefix = std::string("matmul_") + std::string(ir::dtype_name(o_.b_dtype));
    return kb_.finish(prefix, std::move(body));
  }

 private:
  // Element index of A[batch, m, k] and of B's row n (transposed) / column n.
  NodeRef a_row(NodeRef batch, NodeRef m) { return imul(iadd(imul(batch_a(batch), c_i64(o_.m)), std::move(m)), c_i64(o_.k)); }
  NodeRef batch_a(const NodeRef& batch) { return batch_index(delinearize(batch, out_batch_), a_batch_); }
  NodeRef batch_b(const NodeRef& batch) {
    if (gather_indices_ < 0) return batch_index(delinearize(batch, out_batch_), b_batch_);
    // B's batch index (i.., j..): row idx[i..] (clamped) of the table, then j.. within it
    std::vector<NodeRef> out_idx = delinearize(batch, out_batch_), b_idx(b_batch_.size());
    const size_t offset = out_idx.size() - b_batch_.size();
    for (size_t d = 0; d < b_batch_.size(); ++d) b_idx[d] = b_batch_[d] == 1 ? c_i64(0) : out_idx[offset + d];
    const size_t k = ctx_.shape(gather_indices_).size();
    std::vector<NodeRef> at(b_idx.begin(), b_idx.begin() + static_cast<std::ptrdiff_t>(k));
    NodeRef row = cast(kI64, kb_.value_at(gather_indices_, at));
    row = max_(c_i64(0), min_(row, c_i64(table_shape_[0] - 1)));
    std::vector<NodeRef> middle(b_idx.begin() + static_cast<std::ptrdiff_t>(k), b_idx.end());
    std::vector<int64_t> middle_shape(table_shape_.begin() + 1, table_shape_.end() - 2);
    return iadd(imul(row, c_i64(numel(middle_shape))), linear_index(middle, middle_shape));
  }
  NodeRef b_row(NodeRef batch, NodeRef n) { return iadd(imul(batch_b(batch), c_i64(o_.n)), std::move(n)); }

  // B(k, n) as f32 (`lanes` consecutive k for a transposed B); `row` is b_row(batch, n).
  NodeRef b_value(const NodeRef& row, const NodeRef& batch, const NodeRef& n, const NodeRef& k, int lanes) {
    if (!o_.transposed) {
      NodeRef at = iadd(imul(iadd(imul(batch_b(batch), c_i64(o_.k)), k), c_i64(o_.n)), n);
      return cast(kF32, load(kb_.kernel(), o_.b, at));
    }
    NodeRef v = cast(kF32.with_lanes(lanes), load(kb_.kernel(), o_.b, iadd(imul(row, c_i64(o_.k)), k), lanes));
    if (o_.scales < 0) return v;
    // fp8: the block scale of (n, k); a vector chunk never straddles a block (checked).
    NodeRef scale_at = iadd(imul(idiv(n, o_.block_rows), c_i64(o_.scale_cols)), idiv(k, o_.block_cols));
    NodeRef batch_scales = imul(batch_b(batch), c_i64(ceil_div(o_.n, o_.block_rows) * o_.scale_cols));
    NodeRef scale = load(kb_.kernel(), o_.scales, iadd(batch_scales, scale_at));
    return binary(BinaryOp::mul, v, broadcast(scale, lanes));
  }

  NodeRef a_value(const NodeRef& row_base, const NodeRef& k, int lanes) {
    if (a_quantised()) {  // lanes is 1, or 32 from a block's first element
      NodeRef at = iadd(row_base, k);
      return dequant(kb_.kernel(), o_.a, idiv(at, 32), lanes == 32 ? c_i64(0) : irem(at, 32), lanes);
    }
    return cast(kF32.with_lanes(lanes), load(kb_.kernel(), o_.a, iadd(row_base, k), lanes));
  }
  bool a_quantised() const { return ir::is_quantised(o_.a_dtype); }
  // A work-group-local buffer of `elements` of `dtype`.
  int local_buffer(const char* name, ir::DType dtype, int64_t elements) {
    BufferDecl decl;
    decl.name = kb_.fresh(name);
    decl.dtype = dtype;
    decl.space = Space::local;
    decl.elements = elements;
    return kb_.kernel().add_buffer(std::move(decl));
  }
  // Block index of A[batch, m, 0] (a q8_0 A: K / 32 blocks per row).
  NodeRef a_row_block(const NodeRef& batch, NodeRef m) {
    return imul(iadd(imul(batch_a(batch), c_i64(o_.m)), std::move(m)), c_i64(o_.k / 32));
  }
  // Whether the CPU's tiled schedule multiplies blocks with qdot (int8 dot products).
  bool int8_dot() const {
    return a_quantised() && (o_.b_dtype == ir::DType::q8_0 || o_.b_dtype == ir::DType::q4_0) && o_.scales < 0;
  }

  NodeRef store_out(const NodeRef& batch, const NodeRef& m, const NodeRef& n, NodeRef value) {
    std::vector<NodeRef> idx = delinearize(batch, out_batch_);
    idx.push_back(m);
    idx.push_back(n);
    return kb_.store_value(out_, idx, std::move(value));
  }

  std::vector<NodeRef> tiled(int64_t batches) {
    Kernel& k = kb_.kernel();
    const Schedule& s = ctx_.schedule;
    const int rows = static_cast<int>(std::min<int64_t>(s.matmul_rows, o_.m));
    // a q8_0 A dequantised once per group (below): wider groups share that work
    const int64_t cols = std::min<int64_t>(s.matmul_cols * (a_quantised() && rows > 1 ? 4 : 1), o_.n);
    k.groups[0] = ceil_div(o_.n, cols);
    k.groups[1] = ceil_div(o_.m, rows);
    k.groups[2] = batches;
    const bool quantised = ir::is_quantised(o_.b_dtype);
    int lanes = quantised || a_quantised() ? 32 : s.vector_lanes;
    if (o_.scales >= 0 && o_.block_cols % lanes != 0) lanes = 1;
    // int8 dot products: two blocks per qdot (f32 x 16) where K has an even count
    const int64_t k_blocks = o_.k / 32;
    // (one row of A: GEMV, where int8 products beat f32 FMAs; several rows share each
    // dequantised B chunk in f32 instead, from A rows dequantised once per group)
    const int qdot_blocks = int8_dot() && rows == 1 ? (k_blocks % 4 == 0 ? 4 : k_blocks % 2 == 0 ? 2 : 1) : 0;
    const bool a_local = a_quantised() && qdot_blocks == 0;
    if (qdot_blocks > 0) lanes = 8 * qdot_blocks;

    std::vector<NodeRef> body;
    std::string batch = kb_.fresh("batch"), m0 = kb_.fresh("m0"), n = kb_.fresh("n");
    body.push_back(let(batch, builtin(Builtin::group_id, 2)));
    body.push_back(let(m0, imul(builtin(Builtin::group_id, 1), c_i64(rows))));
    NodeRef batch_ref = ref(batch, kI64);
    std::vector<std::string> a_base(static_cast<size_t>(rows)), a_blk(static_cast<size_t>(rows)), acc(static_cast<size_t>(rows));
    for (int r = 0; r < rows; ++r) {
      // rows past M (the last tile) read row M - 1 and are not stored
      a_base[r] = kb_.fresh("a_row");
      NodeRef m = min_(iadd(ref(m0, kI64), c_i64(r)), c_i64(o_.m - 1));
      if (qdot_blocks > 0 || a_local) {
        a_blk[r] = kb_.fresh("a_blk");
        body.push_back(let(a_blk[r], a_row_block(batch_ref, m)));
      } else {
        body.push_back(let(a_base[r], a_row(batch_ref, m)));
      }
    }
    int a_rows = -1;  // a_local: the tile's rows of A as f32, row r at r * K
    if (a_local) {
      a_rows = local_buffer("a_rows", ir::DType::f32, rows * o_.k);
      std::string blk = kb_.fresh("blk");
      NodeRef blk_ref = ref(blk, kI64);
      std::vector<NodeRef> fill;
      for (int r = 0; r < rows; ++r)
        fill.push_back(store(k, a_rows, iadd(c_i64(r * o_.k), imul(blk_ref, c_i64(32))),
                             dequant(k, o_.a, iadd(ref(a_blk[r], kI64), blk_ref), c_i64(0))));
      body.push_back(for_loop(blk, c_i64(0), c_i64(k_blocks), c_i64(1), std::move(fill)));
    }
    // A[m0 + r, kk .. kk + lanes) as f32
    auto a_chunk = [&](int r, const NodeRef& kk, int width) {
      if (a_local) return load(k, a_rows, iadd(c_i64(r * o_.k), kk), width);
      return a_value(ref(a_base[r], kI64), kk, width);
    };

    std::vector<NodeRef> per_n;
    NodeRef n_ref = ref(n, kI64);
    std::string brow = kb_.fresh("b_row");
    per_n.push_back(let(brow, b_row(batch_ref, n_ref)));
    const Type acc_t = kF32.with_lanes(lanes);
    for (int r = 0; r < rows; ++r) {
      acc[r] = kb_.fresh("acc");
      per_n.push_back(var(acc[r], broadcast(c_f32(0.0), lanes)));
    }
    int64_t main_k = 0;
    if (qdot_blocks > 0) {
      std::string blk = kb_.fresh("blk");
      NodeRef blk_ref = ref(blk, kI64);
      NodeRef b_block = iadd(imul(ref(brow, kI64), c_i64(k_blocks)), blk_ref);
      std::vector<NodeRef> inner;
      for (int r = 0; r < rows; ++r) {
        NodeRef a_block = iadd(ref(a_blk[r], kI64), blk_ref);
        inner.push_back(assign(acc[r], add(ref(acc[r], acc_t), qdot(k, o_.a, a_block, o_.b, b_block, qdot_blocks))));
      }
      per_n.push_back(for_loop(blk, c_i64(0), c_i64(k_blocks), c_i64(qdot_blocks), std::move(inner)));
      main_k = o_.k;
    } else if (quantised) {
      // Whole blocks: K is a multiple of the block size for a quantised B.
      const int64_t per_block = ir::dtype_block_elems(o_.b_dtype);
      std::string blk = kb_.fresh("blk"), sub = kb_.fresh("sub");
      NodeRef block = iadd(imul(ref(brow, kI64), c_i64(o_.k / per_block)), ref(blk, kI64));
      NodeRef first = imul(ref(sub, kI64), c_i64(32));
      std::string bq = kb_.fresh("bq");
      std::vector<NodeRef> inner{let(bq, dequant(k, o_.b, block, first))};
      NodeRef kk = iadd(imul(ref(blk, kI64), c_i64(per_block)), first);
      for (int r = 0; r < rows; ++r)
        inner.push_back(assign(acc[r], fma(a_chunk(r, kk, 32), ref(bq, acc_t), ref(acc[r], acc_t))));
      per_n.push_back(for_loop(blk, c_i64(0), c_i64(o_.k / per_block), c_i64(1),
                               {for_loop(sub, c_i64(0), c_i64(per_block / 32), c_i64(1), std::move(inner))}));
      main_k = o_.k;
    } else if (lanes > 1) {
      main_k = o_.k / lanes * lanes;
      std::string kv = kb_.fresh("k"), bv = kb_.fresh("bv");
      NodeRef kk = ref(kv, kI64);
      std::vector<NodeRef> inner{let(bv, b_value(ref(brow, kI64), batch_ref, n_ref, kk, lanes))};
      for (int r = 0; r < rows; ++r)
        inner.push_back(assign(acc[r], fma(a_chunk(r, kk, lanes), ref(bv, acc_t), ref(acc[r], acc_t))));
      if (main_k > 0) per_n.push_back(for_loop(kv, c_i64(0), c_i64(main_k), c_i64(lanes), std::move(inner)));
    }
    std::vector<std::string> tail(static_cast<size_t>(rows));
    for (int r = 0; r < rows; ++r) {
      tail[r] = kb_.fresh("sum");
      per_n.push_back(var(tail[r], reduce(ReduceOp::add, ref(acc[r], acc_t))));
    }
    if (main_k < o_.k) {
      std::string kv = kb_.fresh("k"), bv = kb_.fresh("bv");
      NodeRef kk = ref(kv, kI64);
      std::vector<NodeRef> inner{let(bv, b_value(ref(brow, kI64), batch_ref, n_ref, kk, 1))};
      for (int r = 0; r < rows; ++r)
        inner.push_back(assign(tail[r], fma(a_chunk(r, kk, 1), ref(bv, kF32), ref(tail[r], kF32))));
      per_n.push_back(for_loop(kv, c_i64(main_k), c_i64(o_.k), c_i64(1), std::move(inner)));
    }
    for (int r = 0; r < rows; ++r) {
      NodeRef m = iadd(ref(m0, kI64), c_i64(r));
      NodeRef st = store_out(batch_ref, m, n_ref, ref(tail[r], kF32));
      per_n.push_back(o_.m % rows == 0 ? st : if_then(lt(m, c_i64(o_.m)), {st}));
    }
    NodeRef n0 = imul(builtin(Builtin::group_id, 0), c_i64(cols));
    body.push_back(for_loop(n, n0, min_(iadd(n0, c_i64(cols)), c_i64(o_.n)), c_i64(1), std::move(per_n)));
    return body;
  }

  // CPU, a q8_0 A of several rows times a Q8_0 / Q4_0 B (prefill): integer products
  // summed per block for 16 columns at once. A work-group takes 16 columns n and up to
  // 64 rows m. It first lays its 16 weight rows out for `dot4`: for every block and
  // 4-byte quad q of it, the 16 rows' quads side by side as unsigned bytes (q8_0: q +
  // 128; q4_0: the nibbles, q + 8), and the 16 block scales. Then, for each row of A and
  // block, 8 dot4 of those 64 bytes with the row's quad (the same 4 bytes in every lane)
  // give the 16 integer dot products (less offset x the sum of the row's quants,
  // the accumulator's start), converted and scaled by d_a * d_b into f32 accumulators.
  static constexpr int64_t kGemmCols = 16, kGemmRows = 4, kGemmGroupRows = 64;

  bool int8_gemm_apply() const {
    return int8_dot() && o_.transposed && gather_indices_ < 0 && o_.m > 1 && (o_.b_scales >= 0 || o_.k * kGemmCols <= 512 * 1024);
  }

  // The 16 weight rows of a work-group laid out for dot4 in local memory (int8_gemm's
  // first step); `b_row_of(c)` is column c's row of B (an index of B's rows).
  struct WeightTile {
    int quads = -1, scales = -1;  // local: [block][q][column][4] bytes, [block][column] f32
    std::vector<NodeRef> stmts;
    NodeRef packed_tile;          // packed weights (no local copy): the tile's index
  };
  // The tile of a packed weight whose first row (of all B's rows) is 16 * `tile`.
  WeightTile packed_tile(NodeRef tile) {
    WeightTile t;
    t.packed_tile = std::move(tile);
    return t;
  }
  // Quad vector q (0..7) of block `blk` of the tile: 16 columns x 4 unsigned bytes.
  NodeRef tile_quads(const WeightTile& t, const NodeRef& blk, int q) {
    Kernel& k = kb_.kernel();
    const int64_t C = kGemmCols, kb = o_.k / 32;
    if (!t.packed_tile) return load(k, t.quads, imul(iadd(imul(blk, c_i64(8)), c_i64(q)), c_i64(C * 4)), static_cast<int>(4 * C));
    const bool q4 = o_.b_dtype == ir::DType::q4_0;
    const int64_t vectors = packed_vectors(o_.b_dtype);
    NodeRef v = iadd(imul(iadd(imul(t.packed_tile, c_i64(kb)), blk), c_i64(vectors)), c_i64(q4 ? q % 4 : q));
    NodeRef raw = load(k, o_.b, imul(v, c_i64(64)), 64);
    if (!q4) return raw;  // stored + 128
    return q < 4 ? binary(BinaryOp::land, raw, u8s(15, 64)) : binary(BinaryOp::shr, raw, u8s(4, 64));
  }
  // The tile's 16 scales of block `blk` as f32 x 16.
  NodeRef tile_scales(const WeightTile& t, const NodeRef& blk) {
    Kernel& k = kb_.kernel();
    const int64_t C = kGemmCols, kb = o_.k / 32;
    if (!t.packed_tile) return load(k, t.scales, imul(blk, c_i64(C)), static_cast<int>(C));
    NodeRef at = imul(iadd(imul(t.packed_tile, c_i64(kb)), blk), c_i64(C));
    return cast(kF32.with_lanes(static_cast<int>(C)), load(k, o_.b_scales, at, static_cast<int>(C)));
  }
  template <class BRowOf>
  WeightTile weight_tile(BRowOf&& b_row_of) {
    Kernel& k = kb_.kernel();
    const int64_t C = kGemmCols, kb = o_.k / 32, b_bytes = ir::dtype_block_bytes(o_.b_dtype);
    const bool q4 = o_.b_dtype == ir::DType::q4_0;
    WeightTile t;
    t.quads = local_buffer("quads", ir::DType::u8, kb * 8 * C * 4);
    t.scales = local_buffer("scales", ir::DType::f32, kb * C);
    std::string c = kb_.fresh("c"), blk = kb_.fresh("blk"), brow = kb_.fresh("b_row"), bblk = kb_.fresh("b_blk");
    NodeRef c_ref = bounded_ref(c, 0, C - 1), blk_ref = bounded_ref(blk, 0, kb - 1), bblk_ref = ref(bblk, kI64);
    std::vector<NodeRef> per_block{let(bblk, iadd(imul(ref(brow, kI64), c_i64(kb)), blk_ref)),
                                   store(k, t.scales, iadd(imul(blk_ref, c_i64(C)), c_ref), qscale(k, o_.b, bblk_ref))};
    for (int q = 0; q < 8; ++q) {
      NodeRef raw = load(k, o_.b, iadd(imul(bblk_ref, c_i64(b_bytes)), c_i64(2 + 4 * (q4 ? q % 4 : q))), 4);
      NodeRef v = !q4 ? add(raw, u8s(128, 4)) : q < 4 ? binary(BinaryOp::land, raw, u8s(15, 4)) : binary(BinaryOp::shr, raw, u8s(4, 4));
      NodeRef at = imul(iadd(imul(iadd(imul(blk_ref, c_i64(8)), c_i64(q)), c_i64(C)), c_ref), c_i64(4));
      per_block.push_back(store(k, t.quads, at, v));
    }
    t.stmts.push_back(for_loop(c, c_i64(0), c_i64(C), c_i64(1),
                               {let(brow, b_row_of(c_ref)), for_loop(blk, c_i64(0), c_i64(kb), c_i64(1), std::move(per_block))}));
    return t;
  }

  // For rows of A whose first blocks are the lets `a_blk` (one per row): the block loop
  // accumulating 16 columns of each row into the f32 x 16 vars `acc` (declared here).
  std::vector<NodeRef> int8_rows(const WeightTile& t, const std::vector<std::string>& a_blk, std::vector<std::string>& acc) {
    Kernel& k = kb_.kernel();
    const int64_t C = kGemmCols, kb = o_.k / 32, a_bytes = ir::dtype_block_bytes(ir::DType::q8_0);
    const Type fx{Scalar::f32, static_cast<int>(C)}, ix{Scalar::i32, static_cast<int>(C)}, ux{Scalar::u8, static_cast<int>(4 * C)};
    std::vector<NodeRef> out;
    acc.assign(a_blk.size(), "");
    for (size_t r = 0; r < a_blk.size(); ++r) {
      acc[r] = kb_.fresh("acc");
      out.push_back(var(acc[r], broadcast(c_f32(0.0), static_cast<int>(C))));
    }
    std::string blk = kb_.fresh("blk"), db = kb_.fresh("db");
    NodeRef blk_ref = bounded_ref(blk, 0, kb - 1);
    std::vector<NodeRef> per_block;
    std::vector<std::string> bq(8);
    for (int q = 0; q < 8; ++q) {
      bq[q] = kb_.fresh("bq");
      per_block.push_back(let(bq[q], tile_quads(t, blk_ref, q)));
    }
    per_block.push_back(let(db, tile_scales(t, blk_ref)));
    for (size_t r = 0; r < a_blk.size(); ++r) {
      std::string a_block = kb_.fresh("a_block"), ab = kb_.fresh("a_at"), iacc = kb_.fresh("iacc");
      per_block.push_back(let(a_block, iadd(ref(a_blk[r], kI64), blk_ref)));
      per_block.push_back(let(ab, imul(ref(a_block, kI64), c_i64(a_bytes))));  // its first byte
      NodeRef sum = broadcast(a_block_start(ref(ab, kI64)), static_cast<int>(C));
      for (int q = 0; q < 8; ++q) {
        NodeRef quad = cast({Scalar::i8, 4}, load(k, o_.a, iadd(ref(ab, kI64), c_i64(2 + 4 * q)), 4));
        sum = dot4(sum, ref(bq[q], ux), quad);
      }
      per_block.push_back(let(iacc, sum));
      NodeRef scale = binary(BinaryOp::mul, ref(db, fx), broadcast(qscale(k, o_.a, ref(a_block, kI64)), static_cast<int>(C)));
      per_block.push_back(assign(acc[r], fma(cast(fx, ref(iacc, ix)), scale, ref(acc[r], fx))));
    }
    out.push_back(for_loop(blk, c_i64(0), c_i64(kb), c_i64(1), std::move(per_block)));
    return out;
  }

  // Stores 16 outputs (batch, m, n0 .. n0 + 15) from an f32 x 16, those below N.
  std::vector<NodeRef> store_columns(const NodeRef& batch, const NodeRef& m, const NodeRef& n0, const std::string& acc) {
    const Type fx{Scalar::f32, static_cast<int>(kGemmCols)};
    if (o_.n % kGemmCols == 0) return {store_out(batch, m, n0, ref(acc, fx))};
    std::vector<NodeRef> st;
    for (int64_t c = 0; c < kGemmCols; ++c)
      st.push_back(if_then(lt(iadd(n0, c_i64(c)), c_i64(o_.n)), {store_out(batch, m, iadd(n0, c_i64(c)), extract(ref(acc, fx), c_i64(c)))}));
    return st;
  }

  // CPU, one row of A times a packed weight (decode; also each slot's expert when few
  // slots share one): a work-group takes 8 tiles of 16 columns; the row's blocks are
  // prepared once (int8_rows' accumulator start and d_a, in local memory), then each
  // tile's blocks stream by in order, 16 columns per dot4.
  static constexpr int64_t kGemvTiles = 8;

  std::vector<NodeRef> int8_gemv_packed(int64_t batches) {
    Kernel& k = kb_.kernel();
    MOAT_INTERNAL_CHECK(o_.m == 1 && o_.n % kGemmCols == 0, "a packed weight's matmul with ", o_.m, " rows of A");
    const int64_t C = kGemmCols, tiles = o_.n / C, kb = o_.k / 32, per_group = std::min(kGemvTiles, tiles);
    const int64_t a_bytes = ir::dtype_block_bytes(ir::DType::q8_0);
    k.groups[0] = ceil_div(tiles, per_group);
    k.groups[2] = batches;
    const int starts = local_buffer("starts", ir::DType::i32, kb), a_scales = local_buffer("a_scales", ir::DType::f32, kb);
    std::string batch = kb_.fresh("batch"), a_blk = kb_.fresh("a_blk"), first = kb_.fresh("first"), blk = kb_.fresh("blk");
    NodeRef batch_ref = ref(batch, kI64), blk_ref = bounded_ref(blk, 0, kb - 1), a_blk_ref = ref(a_blk, kI64);
    std::vector<NodeRef> body{let(batch, builtin(Builtin::group_id, 2)), let(a_blk, a_row_block(batch_ref, c_i64(0))),
                              let(first, imul(batch_b(batch_ref), c_i64(tiles)))};
    {  // the row's blocks: where their dot4 sums start, d_a
      NodeRef at = imul(iadd(a_blk_ref, blk_ref), c_i64(a_bytes));
      body.push_back(for_loop(blk, c_i64(0), c_i64(kb), c_i64(1),
                              {store(k, starts, blk_ref, a_block_start(at)),
                               store(k, a_scales, blk_ref, qscale(k, o_.a, iadd(a_blk_ref, blk_ref)))}));
    }
    const Type fx{Scalar::f32, static_cast<int>(C)}, ix{Scalar::i32, static_cast<int>(C)};
    std::string t = kb_.fresh("t"), acc = kb_.fresh("acc"), b2 = kb_.fresh("blk"), iacc = kb_.fresh("iacc");
    NodeRef t_ref = ref(t, kI64), b2_ref = bounded_ref(b2, 0, kb - 1);
    WeightTile w = packed_tile(iadd(ref(first, kI64), t_ref));
    NodeRef sum = broadcast(load(k, starts, b2_ref), static_cast<int>(C));
    NodeRef at = imul(iadd(a_blk_ref, b2_ref), c_i64(a_bytes));
    for (int q = 0; q < 8; ++q)
      sum = dot4(sum, tile_quads(w, b2_ref, q), cast({Scalar::i8, 4}, load(k, o_.a, iadd(at, c_i64(2 + 4 * q)), 4)));
    NodeRef scale = binary(BinaryOp::mul, tile_scales(w, b2_ref), broadcast(load(k, a_scales, b2_ref), static_cast<int>(C)));
    std::vector<NodeRef> per_tile{
        var(acc, broadcast(c_f32(0.0), static_cast<int>(C))),
        for_loop(b2, c_i64(0), c_i64(kb), c_i64(1),
                 {let(iacc, sum), assign(acc, fma(cast(fx, ref(iacc, ix)), scale, ref(acc, fx)))}),
        store_out(batch_ref, c_i64(0), imul(t_ref, c_i64(C)), ref(acc, fx))};
    NodeRef t0 = imul(builtin(Builtin::group_id, 0), c_i64(per_group));
    body.push_back(for_loop(t, t0, min_(iadd(t0, c_i64(per_group)), c_i64(tiles)), c_i64(1), std::move(per_tile)));
    return body;
  }

  // Where a dot4 sum of A's block (at byte `at`) with unsigned weights starts (i32): the
  // weights carry an offset (q8_0 stored + 128, q4_0 nibbles + 8), so -offset x the sum
  // of the block's 32 quants.
  NodeRef a_block_start(const NodeRef& at) {
    const int64_t offset = o_.b_dtype == ir::DType::q4_0 ? 8 : 128;
    NodeRef quants = cast({Scalar::i8, 32}, load(kb_.kernel(), o_.a, iadd(at, c_i64(2)), 32));
    NodeRef sum = reduce(ReduceOp::add, dot4(broadcast(c_i32(0), 8), u8s(1, 32), quants));
    return binary(BinaryOp::mul, sum, c_i32(-offset));
  }

  static NodeRef u8s(int64_t v, int lanes) { return broadcast(constant({Scalar::u8, 1}, static_cast<double>(v)), lanes); }

  std::vector<NodeRef> int8_gemm(int64_t batches) {
    Kernel& k = kb_.kernel();
    const int64_t C = kGemmCols, mg = std::min(kGemmGroupRows, o_.m);
    k.groups[0] = ceil_div(o_.n, C);
    k.groups[1] = ceil_div(o_.m, mg);
    k.groups[2] = batches;
    std::string batch = kb_.fresh("batch"), n0 = kb_.fresh("n0"), m0 = kb_.fresh("m0"), m_end = kb_.fresh("m_end");
    NodeRef batch_ref = ref(batch, kI64), n0_ref = ref(n0, kI64), m0_ref = ref(m0, kI64);
    std::vector<NodeRef> body{let(batch, builtin(Builtin::group_id, 2)), let(n0, imul(builtin(Builtin::group_id, 0), c_i64(C))),
                              let(m0, imul(builtin(Builtin::group_id, 1), c_i64(mg))),
                              let(m_end, min_(iadd(m0_ref, c_i64(mg)), c_i64(o_.m)))};
    // columns past N repeat row N - 1 and are not stored
    WeightTile tile = o_.b_scales >= 0
                          ? packed_tile(iadd(imul(batch_b(batch_ref), c_i64(o_.n / C)), builtin(Builtin::group_id, 0)))
                          : weight_tile([&](const NodeRef& c) { return b_row(batch_ref, min_(iadd(n0_ref, c), c_i64(o_.n - 1))); });
    body.insert(body.end(), tile.stmts.begin(), tile.stmts.end());
    const int rows = static_cast<int>(std::min<int64_t>(kGemmRows, o_.m));
    std::string r0 = kb_.fresh("r0");
    NodeRef r0_ref = ref(r0, kI64);
    std::vector<NodeRef> per_pass;
    std::vector<std::string> a_blk(static_cast<size_t>(rows)), acc;
    for (int r = 0; r < rows; ++r) {  // rows past M read row M - 1 and are not stored
      a_blk[r] = kb_.fresh("a_blk");
      per_pass.push_back(let(a_blk[r], a_row_block(batch_ref, min_(iadd(r0_ref, c_i64(r)), c_i64(o_.m - 1)))));
    }
    std::vector<NodeRef> loop = int8_rows(tile, a_blk, acc);
    per_pass.insert(per_pass.end(), loop.begin(), loop.end());
    for (int r = 0; r < rows; ++r) {
      NodeRef m = iadd(r0_ref, c_i64(r));
      per_pass.push_back(if_then(lt(m, ref(m_end, kI64)), store_columns(batch_ref, m, n0_ref, acc[r])));
    }
    body.push_back(for_loop(r0, m0_ref, ref(m_end, kI64), c_i64(rows), std::move(per_pass)));
    return body;
  }

  // The slots (output batches) whose expert is `e`, in order: a local i64 list and the
  // var `count`; statements that make them (every work-group of that expert repeats it).
  struct SlotList {
    int chosen = -1;
    std::vector<NodeRef> stmts;
  };
  SlotList slots_of_expert(const NodeRef& e, int64_t slots, const std::string& count) {
    Kernel& k = kb_.kernel();
    SlotList list;
    list.chosen = local_buffer("chosen", ir::DType::i64, slots);
    std::string s = kb_.fresh("s");
    NodeRef s_ref = bounded_ref(s, 0, slots - 1), count_ref = ref(count, kI64);
    list.stmts = {var(count, c_i64(0)),
                  for_loop(s, c_i64(0), c_i64(slots), c_i64(1),
                           {if_then(binary(BinaryOp::eq, batch_b(s_ref), e),
                                    {store(k, list.chosen, count_ref, s_ref), assign(count, iadd(count_ref, c_i64(1)))})})};
    return list;
  }

  // grouped_experts with int8 products: a work-group takes one expert and up to 4 tiles
  // of 16 columns; per tile (packed, or laid out once by weight_tile) it runs every slot
  // that chose the expert through int8_rows, 4 slots per pass, then one at a time.
  std::vector<NodeRef> grouped_experts_int8(int64_t slots) {
    Kernel& k = kb_.kernel();
    // a work-group: one expert, up to 4 tiles of 16 columns (the slot list made once)
    const int64_t experts = table_shape_[0], C = kGemmCols, tiles = ceil_div(o_.n, C), per_group = 4;
    const int64_t groups_per_expert = ceil_div(tiles, per_group);
    k.groups[0] = experts * groups_per_expert;
    std::string e = kb_.fresh("e"), g = kb_.fresh("g"), count = kb_.fresh("count");
    std::string tile = kb_.fresh("tile"), n0 = kb_.fresh("n0");
    NodeRef e_ref = bounded_ref(e, 0, experts - 1), count_ref = ref(count, kI64), n0_ref = ref(n0, kI64);
    std::vector<NodeRef> body{let(e, idiv(builtin(Builtin::group_id, 0), groups_per_expert)),
                              let(g, irem(builtin(Builtin::group_id, 0), groups_per_expert))};
    const SlotList list = slots_of_expert(e_ref, slots, count);
    const int chosen = list.chosen;
    body.insert(body.end(), list.stmts.begin(), list.stmts.end());
    std::vector<NodeRef> per_tile{let(n0, imul(ref(tile, kI64), c_i64(C)))};
    WeightTile w = o_.b_scales >= 0 ? packed_tile(iadd(imul(e_ref, c_i64(o_.n / C)), ref(tile, kI64)))
                                    : weight_tile([&](const NodeRef& c) {
                                        return iadd(imul(e_ref, c_i64(o_.n)), min_(iadd(n0_ref, c), c_i64(o_.n - 1)));
                                      });
    per_tile.insert(per_tile.end(), w.stmts.begin(), w.stmts.end());
    // the slots 4 at a time, then the rest one at a time
    auto passes = [&](int rows, NodeRef begin, NodeRef end) {
      std::string c0 = kb_.fresh("c0");
      NodeRef c0_ref = ref(c0, kI64);
      std::vector<NodeRef> per_pass;
      std::vector<std::string> slot(static_cast<size_t>(rows)), a_blk(static_cast<size_t>(rows)), acc;
      for (int r = 0; r < rows; ++r) {
        slot[r] = kb_.fresh("slot");
        a_blk[r] = kb_.fresh("a_blk");
        per_pass.push_back(let(slot[r], load(k, chosen, iadd(c0_ref, c_i64(r)))));
        per_pass.push_back(let(a_blk[r], a_row_block(ref(slot[r], kI64), c_i64(0))));
      }
      std::vector<NodeRef> loop = int8_rows(w, a_blk, acc);
      per_pass.insert(per_pass.end(), loop.begin(), loop.end());
      for (int r = 0; r < rows; ++r) {
        std::vector<NodeRef> st = store_columns(ref(slot[r], kI64), c_i64(0), n0_ref, acc[r]);
        per_pass.insert(per_pass.end(), st.begin(), st.end());
      }
      return for_loop(c0, std::move(begin), std::move(end), c_i64(rows), std::move(per_pass));
    };
    NodeRef whole = imul(idiv(count_ref, 4), c_i64(4));
    per_tile.push_back(passes(4, c_i64(0), whole));
    per_tile.push_back(passes(1, whole, count_ref));
    NodeRef first = imul(ref(g, kI64), c_i64(per_group));
    body.push_back(if_then(lt(c_i64(0), count_ref), {for_loop(tile, first, min_(iadd(first, c_i64(per_group)), c_i64(tiles)),
                                                              c_i64(1), std::move(per_tile))}));
    return body;
  }
  static NodeRef isub1(NodeRef x) { return binary(BinaryOp::sub, std::move(x), c_i64(1)); }

  // CPU, experts of a MoE layer for many tokens (prefill): B gathered from a table
  // [E, N, K] by each slot's expert index, one row of A per slot. Per-slot GEMVs would
  // stream an expert's weights once for every slot that chose it; here a work-group
  // takes one expert and a tile of its rows: it lists the slots that chose the expert,
  // and dequantises each weight row once (into local memory) for all of them. The sums
  // run in the order of `tiled` (32-lane chunks, then a horizontal add).
  bool grouped_experts_apply(int64_t slots) const {
    if (gather_indices_ < 0 || !o_.transposed || o_.m != 1 || o_.scales >= 0 || table_shape_.size() != 3) return false;
    const bool quantised = ir::is_quantised(o_.b_dtype);
    if (!quantised && o_.k % 32 != 0) return false;
    if (o_.k * 16 > 256 * 1024 || slots * 8 > 256 * 1024) return false;  // local memory: 4 rows of B, the slot list
    return slots >= 2 * table_shape_[0];  // enough slots per expert to share its rows
  }

  std::vector<NodeRef> grouped_experts(int64_t slots) {
    Kernel& k = kb_.kernel();
    const int64_t experts = table_shape_[0], cols = ctx_.schedule.matmul_cols;
    const int64_t tiles = ceil_div(o_.n, cols);
    k.groups[0] = experts * tiles;
    std::string e = kb_.fresh("e"), tile = kb_.fresh("tile"), count = kb_.fresh("count");
    NodeRef e_ref = bounded_ref(e, 0, experts - 1), count_ref = ref(count, kI64);
    std::vector<NodeRef> body{let(e, idiv(builtin(Builtin::group_id, 0), tiles)),
                              let(tile, irem(builtin(Builtin::group_id, 0), tiles))};
    const SlotList list = slots_of_expert(e_ref, slots, count);  // slots that chose the expert
    const int chosen = list.chosen;
    body.insert(body.end(), list.stmts.begin(), list.stmts.end());
    const bool quantised = ir::is_quantised(o_.b_dtype);
    const int64_t per_block = quantised ? ir::dtype_block_elems(o_.b_dtype) : 32;
    // B rows per pass: each chunk of a slot's A row is loaded once for all of them.
    const int64_t rows = o_.n % 4 == 0 ? 4 : 1;
    const int row = local_buffer("rows", ir::DType::f32, rows * o_.k);  // dequantised rows of B
    std::string n = kb_.fresh("n"), blk = kb_.fresh("blk"), sub = kb_.fresh("sub"), c = kb_.fresh("c");
    std::string slot = kb_.fresh("slot"), a_base = kb_.fresh("a_row"), kc = kb_.fresh("k"), av = kb_.fresh("a");
    NodeRef n_ref = bounded_ref(n, 0, o_.n - 1);
    std::vector<NodeRef> per_n;
    for (int64_t r = 0; r < rows; ++r) {  // the rows, 32 elements at a time
      NodeRef b_row_ref = iadd(imul(e_ref, c_i64(o_.n)), iadd(n_ref, c_i64(r)));
      NodeRef first = imul(ref(sub, kI64), c_i64(32));
      NodeRef at = iadd(imul(ref(blk, kI64), c_i64(per_block)), first);
      NodeRef chunk = quantised
                          ? dequant(k, o_.b, iadd(imul(b_row_ref, c_i64(o_.k / per_block)), ref(blk, kI64)), first)
                          : cast(kF32.with_lanes(32), load(k, o_.b, iadd(imul(b_row_ref, c_i64(o_.k)), at), 32));
      per_n.push_back(for_loop(blk, c_i64(0), c_i64(o_.k / per_block), c_i64(1),
                               {for_loop(sub, c_i64(0), c_i64(per_block / 32), c_i64(1),
                                         {store(k, row, iadd(c_i64(r * o_.k), at), chunk)})}));
    }
    {  // every slot that chose the expert: its row of A . each row of B
      const Type t = kF32.with_lanes(32);
      NodeRef slot_ref = ref(slot, kI64), kk = ref(kc, kI64);
      std::vector<NodeRef> per_slot{let(slot, load(k, chosen, ref(c, kI64))), let(a_base, a_row(slot_ref, c_i64(0)))};
      std::vector<std::string> acc(static_cast<size_t>(rows));
      std::vector<NodeRef> dot{let(av, a_value(ref(a_base, kI64), kk, 32))};
      for (int64_t r = 0; r < rows; ++r) {
        acc[r] = kb_.fresh("acc");
        per_slot.push_back(var(acc[r], broadcast(c_f32(0.0), 32)));
        dot.push_back(assign(acc[r], fma(ref(av, t), load(k, row, iadd(c_i64(r * o_.k), kk), 32), ref(acc[r], t))));
      }
      per_slot.push_back(for_loop(kc, c_i64(0), c_i64(o_.k), c_i64(32), std::move(dot)));
      for (int64_t r = 0; r < rows; ++r)
        per_slot.push_back(store_out(slot_ref, c_i64(0), iadd(n_ref, c_i64(r)), reduce(ReduceOp::add, ref(acc[r], t))));
      per_n.push_back(for_loop(c, c_i64(0), count_ref, c_i64(1), std::move(per_slot)));
    }
    NodeRef n0 = imul(ref(tile, kI64), c_i64(cols));
    body.push_back(if_then(lt(c_i64(0), count_ref),
                           {for_loop(n, n0, min_(iadd(n0, c_i64(cols)), c_i64(o_.n)), c_i64(rows), std::move(per_n))}));
    return body;
  }

  // CPU, B [.., K, N] (activations: attention's probabilities x values): vectors of
  // `vector_lanes` consecutive outputs n, each a sequential sum over k (the order of
  // per_output), for `matmul_rows` rows of A; a scalar tail for N past the last vector.
  std::vector<NodeRef> tiled_untransposed(int64_t batches) {
    Kernel& k = kb_.kernel();
    const Schedule& s = ctx_.schedule;
    const int lanes = s.vector_lanes;
    const int rows = static_cast<int>(std::min<int64_t>(s.matmul_rows, o_.m));
    const int64_t cols = std::min<int64_t>(int64_t{lanes} * 4, o_.n / lanes * lanes);  // outputs per group
    const int64_t main_n = o_.n / lanes * lanes;
    k.groups[0] = ceil_div(o_.n, cols);
    k.groups[1] = ceil_div(o_.m, rows);
    k.groups[2] = batches;
    std::string batch = kb_.fresh("batch"), m0 = kb_.fresh("m0"), n0 = kb_.fresh("n0"), b_base = kb_.fresh("b_base");
    NodeRef batch_ref = ref(batch, kI64);
    std::vector<NodeRef> body{let(batch, builtin(Builtin::group_id, 2)),
                              let(m0, imul(builtin(Builtin::group_id, 1), c_i64(rows))),
                              let(n0, imul(builtin(Builtin::group_id, 0), c_i64(cols))),
                              let(b_base, imul(batch_b(batch_ref), c_i64(o_.k * o_.n)))};
    std::vector<std::string> a_base(static_cast<size_t>(rows));
    for (int r = 0; r < rows; ++r) {  // rows past M (the last tile) read row M - 1 and are not stored
      a_base[r] = kb_.fresh("a_row");
      body.push_back(let(a_base[r], a_row(batch_ref, min_(iadd(ref(m0, kI64), c_i64(r)), c_i64(o_.m - 1)))));
    }
    const NodeRef end = min_(iadd(ref(n0, kI64), c_i64(cols)), c_i64(o_.n));
    auto columns = [&](const std::string& n, int width) {
      const Type t = kF32.with_lanes(width);
      NodeRef n_ref = ref(n, kI64);
      std::vector<NodeRef> per_n;
      std::vector<std::string> acc(static_cast<size_t>(rows));
      for (int r = 0; r < rows; ++r) {
        acc[r] = kb_.fresh("acc");
        per_n.push_back(var(acc[r], width == 1 ? c_f32(0.0) : broadcast(c_f32(0.0), width)));
      }
      std::string kv = kb_.fresh("k"), bv = kb_.fresh("bv");
      NodeRef kk = ref(kv, kI64);
      NodeRef b_at = iadd(ref(b_base, kI64), iadd(imul(kk, c_i64(o_.n)), n_ref));
      std::vector<NodeRef> inner{let(bv, cast(t, load(k, o_.b, b_at, width)))};
      for (int r = 0; r < rows; ++r) {
        NodeRef a = a_value(ref(a_base[r], kI64), kk, 1);
        inner.push_back(assign(acc[r], fma(width == 1 ? a : broadcast(a, width), ref(bv, t), ref(acc[r], t))));
      }
      per_n.push_back(for_loop(kv, c_i64(0), c_i64(o_.k), c_i64(1), std::move(inner)));
      for (int r = 0; r < rows; ++r) {
        NodeRef m = iadd(ref(m0, kI64), c_i64(r));
        NodeRef st = store_out(batch_ref, m, n_ref, ref(acc[r], t));
        per_n.push_back(o_.m % rows == 0 ? st : if_then(lt(m, c_i64(o_.m)), {st}));
      }
      return per_n;
    };
    std::string nv = kb_.fresh("n"), ns = kb_.fresh("n");
    body.push_back(for_loop(nv, ref(n0, kI64), min_(end, c_i64(main_n)), c_i64(lanes), columns(nv, lanes)));
    if (main_n < o_.n)
      body.push_back(for_loop(ns, max_(ref(n0, kI64), c_i64(main_n)), end, c_i64(1), columns(ns, 1)));
    return body;
  }

  // GPU, long K: a work-group per output; its work-items take strided k and the partial
  // sums meet in a local-memory tree.
  std::vector<NodeRef> split_k(int64_t batches) {
    Kernel& k = kb_.kernel();
    const int64_t items = reduction_items(ctx_.schedule, o_.k);
    k.groups[0] = batches * o_.m * o_.n;
    std::string lin = kb_.fresh("o"), batch = kb_.fresh("batch"), m = kb_.fresh("m"), n = kb_.fresh("n");
    std::string sum = kb_.fresh("sum"), kv = kb_.fresh("k"), a_base = kb_.fresh("a_row"), brow = kb_.fresh("b_row");
    NodeRef batch_ref = ref(batch, kI64), n_ref = ref(n, kI64), kk = ref(kv, kI64);
    std::vector<NodeRef> body{let(lin, builtin(Builtin::group_id, 0)),
                              let(n, irem(ref(lin, kI64), o_.n)),
                              let(m, irem(idiv(ref(lin, kI64), o_.n), o_.m)),
                              let(batch, idiv(ref(lin, kI64), o_.n * o_.m))};
    body.push_back(let(a_base, a_row(batch_ref, ref(m, kI64))));
    body.push_back(let(brow, b_row(batch_ref, n_ref)));
    body.push_back(var(sum, c_f32(0.0)));
    NodeRef bval;
    if (ir::is_quantised(o_.b_dtype)) {
      const int64_t per_block = ir::dtype_block_elems(o_.b_dtype);
      NodeRef block = iadd(imul(ref(brow, kI64), c_i64(o_.k / per_block)), idiv(kk, per_block));
      bval = dequant(k, o_.b, block, irem(kk, per_block), 1);
    } else {
      bval = b_value(ref(brow, kI64), batch_ref, n_ref, kk, 1);
    }
    body.push_back(for_loop(kv, builtin(Builtin::item_id, 0), c_i64(o_.k), c_i64(items),
                            {assign(sum, fma(a_value(ref(a_base, kI64), kk, 1), bval, ref(sum, kF32)))}));
    GroupReduction tree = group_reduce(kb_, ref(sum, kF32), BinaryOp::add, items);
    body.insert(body.end(), tree.stmts.begin(), tree.stmts.end());
    body.push_back(if_then(binary(BinaryOp::eq, builtin(Builtin::item_id, 0), c_i64(0)),
                           {store_out(batch_ref, ref(m, kI64), n_ref, tree.result)}));
    return body;
  }

  // One output per iteration (CPU: rows of outputs per group; GPU: one per work-item).
  std::vector<NodeRef> per_output(int64_t batches) {
    Kernel& k = kb_.kernel();
    const Schedule& s = ctx_.schedule;
    const int64_t total = batches * o_.m * o_.n;
    if (total == 0) return {};
    auto one = [&](NodeRef linear) {
      std::string lin = kb_.fresh("o"), batch = kb_.fresh("batch"), m = kb_.fresh("m"), n = kb_.fresh("n");
      std::string sum = kb_.fresh("sum"), kv = kb_.fresh("k"), a_base = kb_.fresh("a_row"), brow = kb_.fresh("b_row");
      NodeRef batch_ref = ref(batch, kI64), n_ref = ref(n, kI64), kk = ref(kv, kI64);
      std::vector<NodeRef> stmts{let(lin, linear),
                                 let(n, irem(ref(lin, kI64), o_.n)),
                                 let(m, irem(idiv(ref(lin, kI64), o_.n), o_.m)),
                                 let(batch, idiv(ref(lin, kI64), o_.n * o_.m))};
      stmts.push_back(let(a_base, a_row(batch_ref, ref(m, kI64))));
      stmts.push_back(let(brow, b_row(batch_ref, n_ref)));
      stmts.push_back(var(sum, c_f32(0.0)));
      NodeRef bval;
      std::vector<NodeRef> inner;
      if (ir::is_quantised(o_.b_dtype)) {
        // element k of row n: lane k % 32 of its dequantised chunk
        const int64_t per_block = ir::dtype_block_elems(o_.b_dtype);
        NodeRef block = iadd(imul(ref(brow, kI64), c_i64(o_.k / per_block)), idiv(kk, per_block));
        NodeRef in_block = irem(kk, per_block);
        bval = dequant(k, o_.b, block, in_block, 1);
      } else {
        bval = b_value(ref(brow, kI64), batch_ref, n_ref, kk, 1);
      }
      inner.push_back(assign(sum, fma(a_value(ref(a_base, kI64), kk, 1), bval, ref(sum, kF32))));
      stmts.push_back(for_loop(kv, c_i64(0), c_i64(o_.k), c_i64(1), std::move(inner)));
      stmts.push_back(store_out(batch_ref, ref(m, kI64), n_ref, ref(sum, kF32)));
      return stmts;
    };
    if (s.gpu) {
      const int64_t items = std::min<int64_t>(s.work_group_size, total);
      k.items[0] = items;
      k.groups[0] = ceil_div(total, items);
      std::string o = kb_.fresh("o");
      NodeRef linear = iadd(imul(builtin(Builtin::group_id, 0), c_i64(items)), builtin(Builtin::item_id, 0));
      return {let(o, linear), if_then(lt(ref(o, kI64), c_i64(total)), one(ref(o, kI64)))};
    }
    const int64_t per_group = std::max<int64_t>(1, s.elements_per_group / std::max<int64_t>(1, o_.k));
    k.groups[0] = ceil_div(total, per_group);
    std::string o = kb_.fresh("o");
    NodeRef begin = imul(builtin(Builtin::group_id, 0), c_i64(per_group));
    return {for_loop(o, begin, min_(iadd(begin, c_i64(per_group)), c_i64(total)), c_i64(1), one(ref(o, kI64)))};
  }

  LowerContext& ctx_;
  KernelBuilder kb_;
  ir::NodeId id_;
  int out_;
  Operands o_;
  std::vector<int64_t> out_batch_, a_batch_, b_batch_;
  ir::NodeId gather_indices_ = -1;   // B gathered from a table by these indices
  std::vector<int64_t> table_shape_;
};

}  // namespace

PlanKernel matmul_kernel(LowerContext& ctx, ir::NodeId id, int out) { return MatmulLowering(ctx, id, out).run(); }

}  // namespace moat::jit
