// Block-quantised weight formats as data: each format is a table entry (its fields:
// byte offset, size, type and bits per value) and its decode rule, written once as
// Kernel IR. `legalize_numerics` (legalize.h) turns every `dequant`, `qscale` and `qdot`
// into the rule's loads and arithmetic, so no printer names a block type. The
// reference decoder (the interpreter's, ir/quant.cpp) is written independently; the
// conformance tests compare the two on every backend.
//
// Adding a GGUF type: its row in ir/dtype.h, its reference decoder in ir/quant.cpp,
// and one entry here (fields + rule).
#pragma once

#include <span>
#include <string_view>
#include <vector>

#include "ir/dtype.h"
#include "jit/kir.h"

namespace moat::jit {

struct BlockField {
  std::string_view name;
  int64_t offset = 0;  // bytes from the block's start
  int64_t bytes = 0;
  Scalar scalar = Scalar::u8;  // f16 scales, u8 / i8 packed values
  int bits = 8;                // bits per value packed in the field (4: nibbles, 6: 6-bit scales, 2: crumbs)
};

class BlockAccess;

// Per 4 consecutive elements (one dot4 lane), f32 x 8 for 32 elements: x = scale * u - min.
struct SubScales {
  NodeRef scale, min;
};

struct BlockFormat {
  ir::DType dtype;
  std::vector<BlockField> fields;
  // Element `element` (i64, 0 <= element < block elements) of the block: f32.
  NodeRef (*one)(const BlockAccess& block, const NodeRef& element);
  // The 32 elements from `first` (i64, a multiple of 32): f32 x 32.
  NodeRef (*chunk)(const BlockAccess& block, const NodeRef& first);
  // Formats of 32 elements whose value is a scale times an integer, plus a min (the B
  // operand of `qdot` with a q8_0 A): the 32 integers as u8 x 32 such that
  // x = scale * (u - integer_offset) + min, the scale the f16 field "d" unless
  // `integer_scale` gives it, the min 0 unless `integer_min` gives it (both f32 of the
  // block); nullptr for other formats.
  NodeRef (*integers)(const BlockAccess& block) = nullptr;
  int64_t integer_offset = 0;
  // Formats activations are quantised to (`quantize`): the statements that store the
  // block from the quantize node's operands after the block (q8_0: the value, f32 x 32;
  // q8_k: 16 values, the group, the block's signed max); nullptr for decode-only formats.
  std::vector<NodeRef> (*encode)(const BlockAccess& block, const std::vector<NodeRef>& operands) = nullptr;
  // Super-block formats multiplied in integers with a q8_k A (`qdot`, like llama.cpp's
  // vec_dot_*_q8_K): the integers u (u8 x 32) of elements 32c .. 32c + 31 (c a constant,
  // 0 <= c < 8), and their scales and mins per 4 (sub_scales) such that x = s * u - m.
  // A K- or IQ-type joins the int8 path by defining these two; nullptr for other formats.
  NodeRef (*sub_integers)(const BlockAccess& block, int c) = nullptr;
  SubScales (*sub_scales)(const BlockAccess& block, int c) = nullptr;
  NodeRef (*integer_scale)(const BlockAccess& block) = nullptr;
  NodeRef (*integer_min)(const BlockAccess& block) = nullptr;

  const BlockField& field(std::string_view name) const;  // internal error when absent
};

// A 4-bit codebook type's values made unsigned, value + 128 (u8): the table its int8 path
// looks nibbles up in, as Kernel::add_table takes it. IQ4_NL and IQ4_XS share
// kvalues_iq4nl; MXFP4 has its own; nullptr for other types.
const TableDecl* unsigned_codebook(ir::DType dtype);
inline constexpr int64_t kCodebookOffset = 128;
// ggml's GGML_E8M0_TO_FP32_HALF of E8M0 exponents e (i32, any lanes, 0..255): 2^(e - 127) / 2
// as f32 built from its bits (e < 2: the subnormal 0x00200000 << e), every arm defined.
NodeRef e8m0_to_f32_half(const NodeRef& e);

// The format of `dtype`; nullptr when it is not block-quantised.
const BlockFormat* find_block_format(ir::DType dtype);
// Whether `dtype` has a block format with an integer form (the B operand of `qdot`).
bool has_integer_form(ir::DType dtype);
// Every format of the table (tests check each against the reference decoder).
const std::vector<BlockFormat>& block_formats();

// Kernel IR reads and writes of one block of a quantised buffer, for a rule. A value that several
// lanes or uses share is bound to a fresh `let` placed before the statement being
// legalised (`bind`), so it is computed once. A format's constant data (a codebook, a
// grid) is a table of the kernel being legalised (`table`, then `lookup`).
class BlockAccess {
 public:
  BlockAccess(Kernel& kernel, int buffer, const BlockFormat& format, NodeRef block, Binder bind);

  const BlockFormat& format() const { return format_; }
  // The f16 at the start of `field`, as f32.
  NodeRef f16(std::string_view field) const;
  // The f32 at the start of `field` (4-byte aligned in a block of a multiple of 4 bytes).
  NodeRef f32(std::string_view field) const;
  // `lanes` consecutive values of scalar `s` (u8 / i8) from byte `at` (i64) of `field`.
  NodeRef bytes(std::string_view field, const NodeRef& at, Scalar s = Scalar::u8, int lanes = 1) const;
  NodeRef bind(NodeRef value) const { return bind_(std::move(value)); }
  // The kernel's constant table `name` (added on first use; every use must give the same
  // scalar and values): its index for `lookup`.
  int table(std::string_view name, Scalar s, std::span<const int64_t> values) const;
  // kir.h's table_load: `lanes` consecutive elements from a scalar i64 index, or one per
  // lane of an i64 x N index.
  NodeRef lookup(int table, const NodeRef& index, int lanes = 1) const;
  // Stores of `value` (f16) at the start of `field`, of `value` (u8 / i8 lanes) from byte
  // `at` of `field`.
  NodeRef store_f16(std::string_view field, const NodeRef& value) const;
  NodeRef store_f32(std::string_view field, const NodeRef& value) const;
  NodeRef store_bytes(std::string_view field, const NodeRef& at, const NodeRef& value) const;

 private:
  NodeRef byte_index(const BlockField& f, const NodeRef& at) const;  // i64, from the buffer's start
  // i64 index of `field` (a `scalar` of `bytes` bytes, aligned) in units of that scalar.
  NodeRef scalar_index(std::string_view field, Scalar scalar, int64_t bytes) const;
  NodeRef f16_index(std::string_view field) const;                   // i64, in f16 units
  NodeRef f32_index(std::string_view field) const;                   // i64, in f32 units

  Kernel& kernel_;  // tables are added to it
  int buffer_;
  const BlockFormat& format_;
  NodeRef block_;
  Binder bind_;
};

// Constants of narrow types for the rules: scalar or `lanes` copies.
NodeRef c_u8(int64_t v, int lanes = 1);
NodeRef c_i8(int64_t v, int lanes = 1);

}  // namespace moat::jit
