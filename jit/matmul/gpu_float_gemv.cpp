// GPU, an f32 A of a few rows (decode, a verification pass, a batch of sequences) times a
// transposed f16 / bf16 / f32 weight: a sub-group per output column. Its lanes stride
// over the weight row in 16-byte loads (load_vector: PTX ld.global.nc.v4.u32; 8 f16 /
// bf16 or 4 f32 values), widen them in registers and multiply them with A's matching
// values for every row of A at once (weights read once for all rows); a sub-group
// reduction (shfl.sync.bfly) adds the lanes' sums. A sub-group of one work-item (OpenCL
// 1.2, PoCL) walks the whole row. The weight's rows must start on 16 bytes: K a
// multiple of the values per load.
#include <algorithm>

#include "jit/matmul/matmul.h"

namespace moat::jit::matmul {

namespace {

constexpr int64_t kMaxRows = 8;  // rows of A (one accumulator each per lane)

// Values of B per 16-byte load.
int64_t per_load(ir::DType b) { return b == ir::DType::f32 ? 4 : 8; }

bool applies(const Schedule& s, const MatmulShape& mm) {
  const bool float_b = mm.b_dtype == ir::DType::f32 || mm.b_dtype == ir::DType::f16 || mm.b_dtype == ir::DType::bf16;
  return s.gpu && float_b && mm.a_dtype == ir::DType::f32 && mm.transposed && !mm.fp8_scales && !mm.packed_b &&
         mm.m >= 1 && mm.m <= kMaxRows && mm.n > 0 && mm.k > 0 && mm.k % per_load(mm.b_dtype) == 0;
}

// The 8 f32 values of 4 words of packed f16 / bf16 (low half first), or the 4 words as f32.
std::vector<NodeRef> widen(ir::DType b, const std::vector<NodeRef>& words) {
  std::vector<NodeRef> out;
  for (const NodeRef& w : words) {
    if (b == ir::DType::f32) {
      out.push_back(w);
      continue;
    }
    NodeRef high_half = binary(BinaryOp::shr, w, c_i32(16));
    if (b == ir::DType::f16) {
      out.push_back(cast(kF32, bitcast({Scalar::f16, 1}, w)));
      out.push_back(cast(kF32, bitcast({Scalar::f16, 1}, high_half)));
    } else {  // bf16: the f32 whose top half it is
      out.push_back(bitcast(kF32, binary(BinaryOp::shl, w, c_i32(16))));
      out.push_back(bitcast(kF32, binary(BinaryOp::land, w, c_i32(static_cast<int32_t>(0xFFFF0000u)))));
    }
  }
  return out;
}

std::vector<NodeRef> lower(MatmulBuilder& mm) {
  KernelBuilder& kb = mm.kb;
  const Operands& o = mm.o;
  Kernel& k = kb.kernel();
  const Schedule& s = mm.schedule();
  const int64_t W = s.work_group_size, L = std::max(1, s.sub_group_size), S = W / L;  // S columns per group
  const int64_t E = per_load(o.b_dtype), chunks = o.k / E, rows = o.m;
  const int64_t words_per_row = o.k * ir::dtype_block_bytes(o.b_dtype) / ir::dtype_block_elems(o.b_dtype) / 4;
  k.items[0] = W;
  k.groups[0] = ceil_div(o.n, S);
  k.groups[2] = numel(mm.out_batch);

  std::string batch = kb.fresh("batch"), n = kb.fresh("n"), lane = kb.fresh("lane"), brow = kb.fresh("b_row");
  NodeRef batch_ref = ref(batch, kI64), n_ref = ref(n, kI64), item = builtin(Builtin::item_id, 0);
  std::vector<NodeRef> body{let(batch, builtin(Builtin::group_id, 2)),
                            let(n, iadd(imul(builtin(Builtin::group_id, 0), c_i64(S)), idiv(item, L))),
                            let(lane, irem(item, L))};
  std::vector<NodeRef> column{let(brow, mm.b_row(batch_ref, n_ref))};
  std::vector<std::string> acc, a_base;
  for (int64_t r = 0; r < rows; ++r) {
    acc.push_back(kb.fresh("acc"));
    a_base.push_back(kb.fresh("a_row"));
    column.push_back(var(acc.back(), c_f32(0.0)));
    column.push_back(let(a_base.back(), mm.a_row(batch_ref, c_i64(r))));
  }
  std::string c = kb.fresh("c"), w = kb.fresh("w");
  NodeRef c_ref = bounded_ref(c, 0, chunks - 1);
  std::vector<NodeRef> step{load_vector(k, w, o.b, iadd(imul(ref(brow, kI64), c_i64(words_per_row)), imul(c_ref, c_i64(4))),
                                        o.b_dtype == ir::DType::f32 ? kF32.with_lanes(4) : Type{Scalar::i32, 4})};
  std::vector<NodeRef> words;
  for (int l = 0; l < 4; ++l) words.push_back(ref(lane_name(w, l), o.b_dtype == ir::DType::f32 ? kF32 : kI32));
  const std::vector<NodeRef> values = widen(o.b_dtype, words);
  for (int64_t r = 0; r < rows; ++r) {
    NodeRef sum = ref(acc[static_cast<size_t>(r)], kF32);
    for (int64_t e = 0; e < E; ++e) {
      NodeRef a = load(k, o.a, iadd(ref(a_base[static_cast<size_t>(r)], kI64), iadd(imul(c_ref, c_i64(E)), c_i64(e))));
      sum = fma(a, values[static_cast<size_t>(e)], sum);
    }
    step.push_back(assign(acc[static_cast<size_t>(r)], sum));
  }
  column.push_back(for_loop(c, ref(lane, kI64), c_i64(chunks), c_i64(L), std::move(step)));
  std::vector<NodeRef> stores;
  for (int64_t r = 0; r < rows; ++r) {
    NodeRef total = ref(acc[static_cast<size_t>(r)], kF32);
    if (L > 1) {
      std::string sum = kb.fresh("sum");
      column.push_back(let(sum, subgroup_reduce(ReduceOp::add, total)));
      total = ref(sum, kF32);
    }
    stores.push_back(mm.store_out(batch_ref, c_i64(r), n_ref, total));
  }
  column.push_back(if_then(binary(BinaryOp::eq, ref(lane, kI64), c_i64(0)), std::move(stores)));
  body.push_back(if_then(lt(n_ref, c_i64(o.n)), std::move(column)));
  return body;
}

}  // namespace

const MatmulStrategy kGpuFloatGemv{"gpu_float_gemv", applies, lower};

}  // namespace moat::jit::matmul
