// Internal to the matmul lowering: out[.., m, n] = sum_k A[.., m, k] * B(k, n), batch
// dimensions broadcast. A matmul node is lowered by the first strategy of
// matmul_strategies() whose `applies` accepts the schedule and the node's shapes and
// dtypes (MatmulShape); the strategy writes the kernel body through a MatmulBuilder,
// which holds the operands (resolved once per node) and the index helpers every
// strategy shares. One strategy per file in this folder, each with its own parameters.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "jit/block_formats.h"
#include "jit/lower_kernels.h"
#include "jit/weight_packing.h"

namespace moat::jit::matmul {

int64_t ceil_div(int64_t a, int64_t b);

// for name = first; name < end; name += step { body }, or where every work-item makes one
// trip (step >= end, first < end), `let name = first` and the body.
std::vector<NodeRef> loop_or_let(const std::string& name, NodeRef first, int64_t end, int64_t step, std::vector<NodeRef> body);

// What a strategy's predicate may look at: shapes and dtypes of one matmul node.
struct MatmulShape {
  int64_t m = 0, n = 0, k = 0;
  int64_t batches = 0;               // output batches (product of the batch dimensions)
  ir::DType a_dtype = ir::DType::f32, b_dtype = ir::DType::f32;
  bool transposed = false;           // B is [.., N, K] (the weight layout)
  bool fp8_scales = false;           // B has block scales (a third operand)
  bool packed_b = false;             // B is in the packed CPU layout (jit/weight_packing.h)
  bool float_tiles_b = false;        // B (a float weight or table) is in the CPU's tiles of 16 rows (jit/weight_packing.h)
  bool gathered_b = false;           // B is gather(table, idx) read in place (MoE experts)
  int64_t experts = 0;               // gathered_b: rows of the table (E)
  int table_rank = 0;                // gathered_b: rank of the table

  bool a_quantised() const { return ir::is_quantised(a_dtype); }
  // A q8_0 A times a B with an integer form (jit/block_formats.h's `integers`): blocks
  // multiply in integers (qdot / dot4).
  bool int8_dot() const { return a_dtype == ir::DType::q8_0 && has_integer_form(b_dtype) && !fp8_scales; }
  // int8_dot with a B the CPU's int8 weight tiles lay out (int8_tiles.h): Q8_0 / Q4_0 /
  // Q5_0, packed or not, Q4_1 / Q5_1 / IQ4_NL packed; or a q8_k A times a packed
  // super-block B, Q2_K .. Q6_K, IQ4_XS (int8_tiles_k.cpp).
  bool int8_tiles() const {
    if (a_dtype == ir::DType::q8_k) return packed_b && packed_super_blocks(b_dtype);
    if (!int8_dot() || !packed_legacy_blocks(b_dtype)) return false;
    return packed_b || b_dtype == ir::DType::q8_0 || b_dtype == ir::DType::q4_0 || b_dtype == ir::DType::q5_0;  // weight_tile's
  }
};

struct Operands {
  int a = -1, b = -1, scales = -1;  // kernel buffers
  int b_scales = -1;                 // B in the packed layout (jit/weight_packing.h): b holds its quads
  bool b_float_tiles = false;        // B's float weight or table in tiles of 16 rows (jit/weight_packing.h)
  ir::DType a_dtype = ir::DType::f32, b_dtype = ir::DType::f32;
  int64_t m = 0, n = 0, k = 0;
  bool transposed = false;
  int64_t block_rows = 0, block_cols = 0;  // fp8 scale blocks
  int64_t scale_cols = 0;                  // columns of the scale matrix
};

// One matmul node's kernel under construction: its operands and the index arithmetic
// over them. Strategies read the public members and call the helpers.
class MatmulBuilder {
 public:
  // Resolves the node's operands into kernel buffers (in a fixed order: A, B or the
  // gathered table, packed scales, fp8 scales).
  MatmulBuilder(LowerContext& ctx, ir::NodeId id, int out);

  MatmulShape shape() const;
  const Schedule& schedule() const { return ctx.schedule; }

  // Element index of A[batch, m, 0]; the batch index of A / B for output batch `batch`.
  NodeRef a_row(NodeRef batch, NodeRef m);
  NodeRef batch_a(const NodeRef& batch);
  NodeRef batch_b(const NodeRef& batch);
  // Index of B's row n (transposed B) over all of B's rows.
  NodeRef b_row(NodeRef batch, NodeRef n);
  // B(k, n) as f32 (`lanes` consecutive k for a transposed B); `row` is b_row(batch, n).
  NodeRef b_value(const NodeRef& row, const NodeRef& batch, const NodeRef& n, const NodeRef& k, int lanes);
  // A[row_base + k ..) as f32: `lanes` is 1, or 32 from a 32-aligned element for a quantised A.
  NodeRef a_value(const NodeRef& row_base, const NodeRef& k, int lanes);
  bool a_quantised() const { return ir::is_quantised(o.a_dtype); }
  bool int8_dot() const { return o.a_dtype == ir::DType::q8_0 && has_integer_form(o.b_dtype) && o.scales < 0; }
  // A q8_k A times a super-block B with an integer form (jit/block_formats.h's
  // sub_integers: Q4_K, Q6_K): super-blocks multiply in integers (qdot).
  bool k_int8_dot() const;
  // A work-group-local buffer of `elements` of `dtype`.
  int local_buffer(const char* name, ir::DType dtype, int64_t elements);
  // Block index of A[batch, m, 0] (a quantised A: K / block elements blocks per row).
  NodeRef a_row_block(const NodeRef& batch, NodeRef m);
  NodeRef store_out(const NodeRef& batch, const NodeRef& m, const NodeRef& n, NodeRef value);

  // The slots (output batches) whose expert is `e`, in order: a local i64 list and the
  // var `count`; statements that make them (every work-group of that expert repeats it).
  struct SlotList {
    int chosen = -1;
    std::vector<NodeRef> stmts;
  };
  SlotList slots_of_expert(const NodeRef& e, int64_t slots, const std::string& count);

  LowerContext& ctx;
  KernelBuilder kb;
  Operands o;
  std::vector<int64_t> out_batch, a_batch, b_batch;
  ir::NodeId gather_indices = -1;  // B gathered from a table by these indices
  std::vector<int64_t> table_shape;

 private:
  int out_;  // the output's plan buffer
};

// A schedule of the matmul: `applies` decides from the schedule (the target's style and
// capabilities) and the node's shapes and dtypes alone; `lower` returns the kernel body
// and sets the kernel's grid.
struct MatmulStrategy {
  std::string_view name;
  bool (*applies)(const Schedule& schedule, const MatmulShape& shape);
  std::vector<NodeRef> (*lower)(MatmulBuilder& mm);
};

// Every strategy, in the order they are tried; the last applies to every matmul.
std::span<const MatmulStrategy* const> matmul_strategies();

// Whether a GPU schedule reads a packed B of this type and K (gpu_int8_tiles.cpp): the
// lowering packs a weight for a GPU only then, so every one of its uses has a strategy.
// `shape`: the weight's, [.., N, K] (its tiles of 16 rows must not straddle matrices).
bool gpu_reads_packed(const Schedule& s, ir::DType b_dtype, const std::vector<int64_t>& shape);
bool gpu_reads_packed_k(const Schedule& s, ir::DType b_dtype, int64_t k);  // gpu_int8_tiles_k.cpp: Q4_K

// The strategies (one file each).
extern const MatmulStrategy kGpuInt8Tiles;        // gpu_int8_tiles.cpp
extern const MatmulStrategy kGpuInt8TilesK;       // gpu_int8_tiles_k.cpp
extern const MatmulStrategy kGpuFloatGemv;        // gpu_float_gemv.cpp
extern const MatmulStrategy kGroupedExpertsInt8;  // grouped_experts_int8.cpp
extern const MatmulStrategy kGroupedExperts;      // grouped_experts.cpp
extern const MatmulStrategy kInt8Gemm;            // int8_gemm.cpp
extern const MatmulStrategy kInt8GemvPacked;      // int8_gemv_packed.cpp
extern const MatmulStrategy kFloatExpertTiles;    // float_expert_tiles.cpp
extern const MatmulStrategy kFloatTiles;          // float_tiles.cpp
extern const MatmulStrategy kTiledColumns;        // tiled_columns.cpp
extern const MatmulStrategy kTiled;               // tiled.cpp
extern const MatmulStrategy kTiledUntransposed;   // tiled_untransposed.cpp
extern const MatmulStrategy kSplitK;              // split_k.cpp
extern const MatmulStrategy kPerOutput;           // per_output.cpp

}  // namespace moat::jit::matmul
