// Block formats of the grid IQ types (iq3_xxs, iq3_s, iq2_xxs, iq2_xs, iq2_s, iq1_s, iq1_m):
// fields and decode rules (jit/block_formats.h), in the order of operations of the
// reference decoders (ir/quant_iq_grids.cpp; layouts in ir/quant_iq_grids.h).
//
// Every type is 8 sub-blocks of 32 elements, each 4 groups of 8; a group's values are
// entries of one of ggml's lattice grids (ir/iq_grids.h). The grids become constant
// tables of bytes (entry i's values at elements width * i ..), so a group is one
// consecutive table load; the signs of a group are a byte whose bit k negates value k
// (through the ksigns table for the types that store 7 bits), tested against the table
// kmask = {1, 2, 4, ..., 128}. Indices and packed fields are assembled in i64.
#include <span>
#include <type_traits>

#include "ir/iq_grids.h"
#include "jit/block_rules.h"

namespace moat::jit {

namespace {

using namespace block_rules;

// --- constant tables

// A grid's values as table elements: entry i's `width` bytes (value j in byte j), as u8
// or as i8 (iq1s: -1 / 0 / 1).
template <typename Word>
std::vector<int64_t> grid_elements(std::span<const Word> grid, bool is_signed) {
  std::vector<int64_t> out;
  out.reserve(grid.size() * sizeof(Word));
  for (Word entry : grid)
    for (size_t j = 0; j < sizeof(Word); ++j) {
      const auto byte = static_cast<uint8_t>(entry >> (8 * j));
      out.push_back(is_signed ? static_cast<int8_t>(byte) : byte);
    }
  return out;
}

struct Grid {
  const char* name;
  Scalar scalar;  // of its values
  int width;      // values per entry: 8 or 4
  const std::vector<int64_t>& (*elements)();
};

// grid_elements of one grid, made once.
template <auto& kGrid, bool kSigned>
const std::vector<int64_t>& cached_elements() {
  static const auto v = grid_elements(std::span<const std::remove_extent_t<std::remove_reference_t<decltype(kGrid)>>>(kGrid), kSigned);
  return v;
}

const Grid kIq2xxs{"iq2xxs_grid", Scalar::u8, 8, cached_elements<ir::kIq2xxsGrid, false>};
const Grid kIq2xs{"iq2xs_grid", Scalar::u8, 8, cached_elements<ir::kIq2xsGrid, false>};
const Grid kIq2s{"iq2s_grid", Scalar::u8, 8, cached_elements<ir::kIq2sGrid, false>};
const Grid kIq3xxs{"iq3xxs_grid", Scalar::u8, 4, cached_elements<ir::kIq3xxsGrid, false>};
const Grid kIq3s{"iq3s_grid", Scalar::u8, 4, cached_elements<ir::kIq3sGrid, false>};
const Grid kIq1s{"iq1s_grid", Scalar::i8, 8, cached_elements<ir::kIq1sGrid, true>};

const std::vector<int64_t>& ksigns_elements() {
  static const std::vector<int64_t> v(std::begin(ir::kKsignsIq2xs), std::end(ir::kKsignsIq2xs));
  return v;
}

const std::vector<int64_t>& kmask_elements() {
  static const std::vector<int64_t> v = {1, 2, 4, 8, 16, 32, 64, 128};
  return v;
}

// --- shared pieces

NodeRef byte_i64(const BlockAccess& b, std::string_view field, const NodeRef& at) { return cast(kI64, b.bytes(field, at)); }

// The little-endian u16 / u32 at byte `at` of `field`, as i64.
NodeRef u16_at(const BlockAccess& b, std::string_view field, const NodeRef& at) {
  return bit_or(byte_i64(b, field, at), shl(byte_i64(b, field, add(at, i64c(1))), i64c(8)));
}
NodeRef u32_at(const BlockAccess& b, std::string_view field, const NodeRef& at) {
  return bit_or(u16_at(b, field, at), shl(u16_at(b, field, add(at, i64c(2))), i64c(16)));
}

// Value k (i64) of grid entry `index` (i64): the grid's scalar.
NodeRef grid_value(const BlockAccess& b, const Grid& g, const NodeRef& index, const NodeRef& k) {
  const int table = b.table(g.name, g.scalar, g.elements());
  return b.lookup(table, add(mul(index, i64c(g.width)), k));
}

// The `width` values of grid entry `index` (i64): the grid's scalar x width.
NodeRef grid_entry(const BlockAccess& b, const Grid& g, const NodeRef& index) {
  const int table = b.table(g.name, g.scalar, g.elements());
  return b.lookup(table, mul(index, i64c(g.width)), g.width);
}

// Sign byte of a group from its 7 stored bits (i64), through ggml's ksigns_iq2xs: u8.
NodeRef ksigns(const BlockAccess& b, const NodeRef& seven_bits) {
  return b.lookup(b.table("ksigns_iq2xs", Scalar::u8, ksigns_elements()), seven_bits);
}

// -1 where bit k of `signs` (u8) is set, else 1 (f32): value k (i64) of a group.
NodeRef sign_of(const BlockAccess& b, const NodeRef& signs, const NodeRef& k) {
  NodeRef mask = b.lookup(b.table("kmask_iq2xs", Scalar::u8, kmask_elements()), k);
  return select(binary(BinaryOp::ne, bit_and(signs, mask), c_u8(0)), c_f32(-1.0), c_f32(1.0));
}

NodeRef concat4(NodeRef a, NodeRef b, NodeRef c, NodeRef d) {
  return concat(concat(std::move(a), std::move(b)), concat(std::move(c), std::move(d)));
}

// Entry s (8 bytes) holds bit k of s in byte k: a sign byte's 8 flags in one 8-byte load
// (as llama.cpp's keven_signs table), where testing a broadcast byte against kmask would
// assemble each lane's copy of it one by one.
const std::vector<int64_t>& sign_flag_elements() {
  static const std::vector<int64_t> v = [] {
    std::vector<int64_t> out;
    for (int s = 0; s < 256; ++s)
      for (int k = 0; k < 8; ++k) out.push_back((s >> k) & 1);
    return out;
  }();
  return v;
}

// Which of a sub-block's 32 values its 4 groups' sign bytes (u8 each) negate: bool x 32.
NodeRef negative_lanes(const BlockAccess& b, const NodeRef (&signs)[4]) {
  const int table = b.table("sign_flags", Scalar::u8, sign_flag_elements());
  NodeRef flags[4];
  for (int l = 0; l < 4; ++l) flags[l] = b.lookup(table, mul(cast(kI64, signs[l]), i64c(8)), 8);
  return binary(BinaryOp::ne, concat4(flags[0], flags[1], flags[2], flags[3]), c_u8(0, 32));
}

// The signs of the 4 groups of a sub-block (u8 each) as f32 x 32 of ±1.
NodeRef signs_of_chunk(const BlockAccess& b, const NodeRef (&signs)[4]) {
  return select(negative_lanes(b, signs), splat32(c_f32(-1.0)), splat32(c_f32(1.0)));
}

// db * grid * sign, with the grid values u8 x 32 and db f32 x 32.
NodeRef scaled_signed(const NodeRef& db, const NodeRef& grid, const NodeRef& signs) {
  return mul(mul(db, to_f32(grid)), signs);
}

// 2-bit-grid scale: d * (0.5 + s) * 0.25 (s: i64).
NodeRef iq2_scale(const NodeRef& d, const NodeRef& s) {
  return mul(mul(d, add(c_f32(0.5), to_f32(s))), c_f32(0.25));
}

// Where element e (i64) of a 256-element block lies: sub-block j, group l, value k.
struct Position {
  NodeRef j, l, k;
};
Position position(const BlockAccess& b, const NodeRef& e) {
  return {b.bind(shr(e, i64c(5))), b.bind(bit_and(shr(e, i64c(3)), i64c(3))), b.bind(bit_and(e, i64c(7)))};
}

// --- the int8 path (q8_k A, as llama.cpp's vec_dot_iq*_q8_K): a sub-block's values are
// its scale times signed integers, grid * sign for the 2- and 3-bit grids (|grid| <= 62),
// made unsigned for dot4 as u = 64 + grid * sign, so x = s * u - 64 s.

constexpr int64_t kSignedOffset = 64;

// The scales of a sub-block's two halves of 16 elements (f32; one value twice where the
// type has one scale per 32).
struct Halves {
  NodeRef low, high;
};

// A sub-block of a signed grid type: its grid values, the sign bytes of its 4 groups and
// its scales.
struct SignedGroups {
  NodeRef grid;      // u8 x 32
  NodeRef signs[4];  // u8
  Halves scales;
};

// f32 x 32: scale * grid * sign in the reference decoder's order.
NodeRef signed_values(const BlockAccess& b, const SignedGroups& g) {
  return scaled_signed(concat(broadcast(g.scales.low, 16), broadcast(g.scales.high, 16)), g.grid, signs_of_chunk(b, g.signs));
}

NodeRef signed_integers(const BlockAccess& b, const SignedGroups& g) {
  NodeRef offset = c_u8(kSignedOffset, 32);
  return select(negative_lanes(b, g.signs), sub(offset, g.grid), add(offset, g.grid));
}

SubScales signed_sub_scales(const Halves& h) {
  NodeRef scale = concat(broadcast(h.low, 4), broadcast(h.high, 4));
  return {scale, mul(scale, broadcast(c_f32(static_cast<double>(kSignedOffset)), 8))};
}

// A signed grid type's chunk rule and int8 path from its groups (of the sub-block at
// element `first`) and its scales (of sub-block j), so the three read the same data.
template <SignedGroups (*kGroups)(const BlockAccess&, const NodeRef&)>
NodeRef signed_chunk(const BlockAccess& b, const NodeRef& first) {
  return signed_values(b, kGroups(b, first));
}
template <SignedGroups (*kGroups)(const BlockAccess&, const NodeRef&)>
NodeRef signed_sub_integers(const BlockAccess& b, int c) {
  return signed_integers(b, kGroups(b, i64c(32 * c)));
}
template <Halves (*kScales)(const BlockAccess&, const NodeRef&)>
SubScales signed_scales(const BlockAccess& b, int c) {
  return signed_sub_scales(kScales(b, i64c(c)));
}

// --- iq2_xxs: d (f16), then per sub-block j 8 bytes of qs: 4 grid indices, then a u32
// with the 7 sign bits of group l at 7l and the scale s at 28..31.

NodeRef iq2_xxs_one(const BlockAccess& b, const NodeRef& e) {
  const Position p = position(b, e);
  NodeRef base = b.bind(mul(p.j, i64c(8)));
  NodeRef rest = b.bind(u32_at(b, "qs", add(base, i64c(4))));
  NodeRef db = iq2_scale(b.f16("d"), shr(rest, i64c(28)));
  NodeRef grid = grid_value(b, kIq2xxs, byte_i64(b, "qs", add(base, p.l)), p.k);
  NodeRef signs = ksigns(b, bit_and(shr(rest, mul(p.l, i64c(7))), i64c(127)));
  return mul(mul(db, to_f32(grid)), sign_of(b, signs, p.k));
}

// The sign bytes of a sub-block's 4 groups from the 7-bit ksigns indices at bits 7l of
// `rest` (i64; iq2_xxs, iq3_xxs).
void seven_bit_signs(const BlockAccess& b, const NodeRef& rest, NodeRef (&signs)[4]) {
  for (int l = 0; l < 4; ++l) signs[l] = b.bind(ksigns(b, bit_and(shr(rest, i64c(7 * l)), i64c(127))));
}

// The u32 after sub-block j's (i64) 4 grid indices: signs and scale.
NodeRef iq2_xxs_rest(const BlockAccess& b, const NodeRef& j) { return b.bind(u32_at(b, "qs", add(mul(j, i64c(8)), i64c(4)))); }

Halves iq2_xxs_scales(const BlockAccess& b, const NodeRef& j) {
  NodeRef db = b.bind(iq2_scale(b.f16("d"), shr(iq2_xxs_rest(b, j), i64c(28))));
  return {db, db};
}

SignedGroups iq2_xxs_groups(const BlockAccess& b, const NodeRef& first) {
  NodeRef j = b.bind(shr(first, i64c(5)));
  NodeRef rest = iq2_xxs_rest(b, j);
  NodeRef grid[4];
  SignedGroups g;
  for (int l = 0; l < 4; ++l) grid[l] = grid_entry(b, kIq2xxs, byte_i64(b, "qs", add(mul(j, i64c(8)), i64c(l))));  // 8 bytes per 32
  seven_bit_signs(b, rest, g.signs);
  g.grid = concat4(grid[0], grid[1], grid[2], grid[3]);
  g.scales = iq2_xxs_scales(b, j);
  return g;
}

// --- iq2_xs: d (f16), 32 u16 qs (group g = 4j + l: grid index in bits 0..8, ksigns
// index in 9..15), 8 bytes of scales (sub-block j: groups 0, 1 the low nibble, 2, 3 the
// high nibble).

// The scale of group l (i64) of sub-block j (i64), for iq2_xs / iq2_s.
NodeRef iq2_nibble_scale(const BlockAccess& b, const NodeRef& j, const NodeRef& l) {
  NodeRef s = bit_and(shr(byte_i64(b, "scales", j), mul(shr(l, i64c(1)), i64c(4))), i64c(15));
  return iq2_scale(b.f16("d"), s);
}

// The two scales of sub-block j (elements 0..15, 16..31).
Halves iq2_nibble_scales(const BlockAccess& b, const NodeRef& j) {
  NodeRef scales = b.bind(byte_i64(b, "scales", j));
  NodeRef d = b.bind(b.f16("d"));
  return {b.bind(iq2_scale(d, bit_and(scales, i64c(15)))), b.bind(iq2_scale(d, shr(scales, i64c(4))))};
}

NodeRef iq2_xs_one(const BlockAccess& b, const NodeRef& e) {
  const Position p = position(b, e);
  NodeRef q = b.bind(u16_at(b, "qs", mul(shr(e, i64c(3)), i64c(2))));
  NodeRef grid = grid_value(b, kIq2xs, bit_and(q, i64c(511)), p.k);
  return mul(mul(iq2_nibble_scale(b, p.j, p.l), to_f32(grid)), sign_of(b, ksigns(b, shr(q, i64c(9))), p.k));
}

SignedGroups iq2_xs_groups(const BlockAccess& b, const NodeRef& first) {
  NodeRef j = b.bind(shr(first, i64c(5)));
  NodeRef grid[4];
  SignedGroups g;
  for (int l = 0; l < 4; ++l) {
    NodeRef q = b.bind(u16_at(b, "qs", add(shr(first, i64c(2)), i64c(2 * l))));  // 8 bytes per 32 elements
    grid[l] = grid_entry(b, kIq2xs, bit_and(q, i64c(511)));
    g.signs[l] = b.bind(ksigns(b, shr(q, i64c(9))));
  }
  g.grid = concat4(grid[0], grid[1], grid[2], grid[3]);
  g.scales = iq2_nibble_scales(b, j);
  return g;
}

// --- iq2_s: d (f16), 32 bytes of low index bits (group 4j + l), 32 sign bytes (one per
// group), 8 bytes qh (sub-block j: bits 2l..2l+1 are index bits 8..9 of group l), 8
// bytes of scales as iq2_xs.

NodeRef iq2_s_index(const BlockAccess& b, const NodeRef& j, const NodeRef& group) {
  NodeRef high = bit_and(shr(byte_i64(b, "qh", j), mul(bit_and(group, i64c(3)), i64c(2))), i64c(3));
  return bit_or(byte_i64(b, "qs", group), shl(high, i64c(8)));
}

NodeRef iq2_s_one(const BlockAccess& b, const NodeRef& e) {
  const Position p = position(b, e);
  NodeRef group = b.bind(shr(e, i64c(3)));
  NodeRef grid = grid_value(b, kIq2s, iq2_s_index(b, p.j, group), p.k);
  return mul(mul(iq2_nibble_scale(b, p.j, p.l), to_f32(grid)), sign_of(b, b.bytes("signs", group), p.k));
}

SignedGroups iq2_s_groups(const BlockAccess& b, const NodeRef& first) {
  NodeRef j = b.bind(shr(first, i64c(5)));
  NodeRef group0 = b.bind(shr(first, i64c(3)));
  NodeRef grid[4];
  SignedGroups g;
  for (int l = 0; l < 4; ++l) {
    NodeRef group = add(group0, i64c(l));
    grid[l] = grid_entry(b, kIq2s, iq2_s_index(b, j, group));
    g.signs[l] = b.bind(b.bytes("signs", group));
  }
  g.grid = concat4(grid[0], grid[1], grid[2], grid[3]);
  g.scales = iq2_nibble_scales(b, j);
  return g;
}

// --- iq3_xxs: d (f16), 64 bytes qs (8 grid indices per sub-block, two entries of 4 per
// group), then per sub-block j a u32 at scales_signs[4j]: 7 sign bits of group l at 7l,
// the scale s at 28..31: db = d * (0.5 + s) * 0.5.

NodeRef iq3_xxs_one(const BlockAccess& b, const NodeRef& e) {
  const Position p = position(b, e);
  NodeRef rest = b.bind(u32_at(b, "scales_signs", mul(p.j, i64c(4))));
  NodeRef db = mul(mul(b.f16("d"), add(c_f32(0.5), to_f32(shr(rest, i64c(28))))), c_f32(0.5));
  NodeRef grid = grid_value(b, kIq3xxs, byte_i64(b, "qs", shr(e, i64c(2))), bit_and(e, i64c(3)));
  NodeRef signs = ksigns(b, bit_and(shr(rest, mul(p.l, i64c(7))), i64c(127)));
  return mul(mul(db, to_f32(grid)), sign_of(b, signs, p.k));
}

// The 8 grid entries of 4 from index bytes qs[at ..] (i64) of `grid`: u8 x 32.
NodeRef iq3_grid_chunk(const BlockAccess& b, const Grid& g, const NodeRef (&index)[8]) {
  NodeRef halves[2];
  for (int h = 0; h < 2; ++h)
    halves[h] = concat4(grid_entry(b, g, index[4 * h]), grid_entry(b, g, index[4 * h + 1]),
                        grid_entry(b, g, index[4 * h + 2]), grid_entry(b, g, index[4 * h + 3]));
  return concat(halves[0], halves[1]);
}

NodeRef iq3_xxs_rest(const BlockAccess& b, const NodeRef& j) { return b.bind(u32_at(b, "scales_signs", mul(j, i64c(4)))); }

Halves iq3_xxs_scales(const BlockAccess& b, const NodeRef& j) {
  NodeRef db = b.bind(mul(mul(b.f16("d"), add(c_f32(0.5), to_f32(shr(iq3_xxs_rest(b, j), i64c(28))))), c_f32(0.5)));
  return {db, db};
}

SignedGroups iq3_xxs_groups(const BlockAccess& b, const NodeRef& first) {
  NodeRef j = b.bind(shr(first, i64c(5)));
  NodeRef rest = iq3_xxs_rest(b, j);
  NodeRef index[8];
  SignedGroups g;
  for (int i = 0; i < 8; ++i) index[i] = byte_i64(b, "qs", add(shr(first, i64c(2)), i64c(i)));
  seven_bit_signs(b, rest, g.signs);
  g.grid = iq3_grid_chunk(b, kIq3xxs, index);
  g.scales = iq3_xxs_scales(b, j);
  return g;
}

// --- iq3_s: d (f16), 64 bytes of low index bits (8 per sub-block), 8 bytes qh (bit i of
// qh[j]: bit 8 of index i of sub-block j), 32 sign bytes (one per group), 4 bytes of
// scales (sub-block j: nibble j & 1 of byte j / 2): db = d * (1 + 2 s).

NodeRef iq3_s_scale(const BlockAccess& b, const NodeRef& j) {
  NodeRef s = bit_and(shr(byte_i64(b, "scales", shr(j, i64c(1))), mul(bit_and(j, i64c(1)), i64c(4))), i64c(15));
  return mul(b.f16("d"), to_f32(add(i64c(1), mul(i64c(2), s))));
}

// Index i (i64, 0..7) of sub-block j.
NodeRef iq3_s_index(const BlockAccess& b, const NodeRef& j, const NodeRef& i) {
  NodeRef high = bit_and(shr(byte_i64(b, "qh", j), i), i64c(1));
  return bit_or(byte_i64(b, "qs", add(mul(j, i64c(8)), i)), shl(high, i64c(8)));
}

NodeRef iq3_s_one(const BlockAccess& b, const NodeRef& e) {
  const Position p = position(b, e);
  NodeRef grid = grid_value(b, kIq3s, iq3_s_index(b, p.j, bit_and(shr(e, i64c(2)), i64c(7))), bit_and(e, i64c(3)));
  return mul(mul(iq3_s_scale(b, p.j), to_f32(grid)), sign_of(b, b.bytes("signs", shr(e, i64c(3))), p.k));
}

Halves iq3_s_scales(const BlockAccess& b, const NodeRef& j) {
  NodeRef db = b.bind(iq3_s_scale(b, j));
  return {db, db};
}

SignedGroups iq3_s_groups(const BlockAccess& b, const NodeRef& first) {
  NodeRef j = b.bind(shr(first, i64c(5)));
  NodeRef index[8];
  SignedGroups g;
  for (int i = 0; i < 8; ++i) index[i] = iq3_s_index(b, j, i64c(i));
  for (int l = 0; l < 4; ++l) g.signs[l] = b.bind(b.bytes("signs", add(shr(first, i64c(3)), i64c(l))));
  g.grid = iq3_grid_chunk(b, kIq3s, index);
  g.scales = iq3_s_scales(b, j);
  return g;
}

// --- iq1_s: d (f16), 32 bytes of low index bits (group 4j + l), then per sub-block a u16
// qh: bits 3l..3l+2 are index bits 8..10 of group l, 12..14 the scale s, bit 15 the sign
// of delta. x = dl * (grid + delta), dl = d * (2 s + 1), delta = ±1/8.

NodeRef iq1_delta(const NodeRef& negative) { return select(negative, c_f32(-ir::kIq1sDelta), c_f32(ir::kIq1sDelta)); }

NodeRef iq1_s_one(const BlockAccess& b, const NodeRef& e) {
  const Position p = position(b, e);
  NodeRef qh = b.bind(u16_at(b, "qh", mul(p.j, i64c(2))));
  NodeRef dl = mul(b.f16("d"), to_f32(add(mul(bit_and(shr(qh, i64c(12)), i64c(7)), i64c(2)), i64c(1))));
  NodeRef delta = iq1_delta(binary(BinaryOp::ne, bit_and(qh, i64c(0x8000)), i64c(0)));
  NodeRef high = bit_and(shr(qh, mul(p.l, i64c(3))), i64c(7));
  NodeRef grid = grid_value(b, kIq1s, bit_or(byte_i64(b, "qs", shr(e, i64c(3))), shl(high, i64c(8))), p.k);
  return mul(dl, add(to_f32(grid), delta));
}

// Sub-block j's (i64) qh, its scale dl and its delta.
struct Iq1sSubBlock {
  NodeRef qh, dl, delta;
};
Iq1sSubBlock iq1_s_sub_block(const BlockAccess& b, const NodeRef& j) {
  NodeRef qh = b.bind(u16_at(b, "qh", mul(j, i64c(2))));
  NodeRef dl = b.bind(mul(b.f16("d"), to_f32(add(mul(bit_and(shr(qh, i64c(12)), i64c(7)), i64c(2)), i64c(1)))));
  NodeRef delta = b.bind(iq1_delta(binary(BinaryOp::ne, bit_and(qh, i64c(0x8000)), i64c(0))));
  return {qh, dl, delta};
}

// The grid values (i8 x 32) of the sub-block at element `first` (i64) with qh `qh`.
NodeRef iq1_s_grid(const BlockAccess& b, const NodeRef& first, const NodeRef& qh) {
  NodeRef grid[4];
  for (int l = 0; l < 4; ++l) {
    NodeRef high = bit_and(shr(qh, i64c(3 * l)), i64c(7));
    grid[l] = grid_entry(b, kIq1s, bit_or(byte_i64(b, "qs", add(shr(first, i64c(3)), i64c(l))), shl(high, i64c(8))));
  }
  return concat4(grid[0], grid[1], grid[2], grid[3]);
}

NodeRef iq1_s_chunk(const BlockAccess& b, const NodeRef& first) {
  const Iq1sSubBlock s = iq1_s_sub_block(b, b.bind(shr(first, i64c(5))));
  return mul(splat32(s.dl), add(to_f32(iq1_s_grid(b, first, s.qh)), splat32(s.delta)));
}

// The int8 path of iq1_s / iq1_m (q8_k A, as llama.cpp's vec_dot_iq1_*_q8_K): u = grid + 1
// (0..2), s = dl, m = dl * (1 - delta), so x = s * u - m = dl * (grid + delta).
NodeRef iq1_unsigned(const NodeRef& grid) { return cast({Scalar::u8, 32}, add(grid, c_i8(1, 32))); }
NodeRef iq1_min(const NodeRef& dl, const NodeRef& delta) { return mul(dl, sub(c_f32(1.0), delta)); }

NodeRef iq1_s_sub_integers(const BlockAccess& b, int c) {
  return iq1_unsigned(iq1_s_grid(b, i64c(32 * c), iq1_s_sub_block(b, i64c(c)).qh));
}

SubScales iq1_s_sub_scales(const BlockAccess& b, int c) {
  const Iq1sSubBlock s = iq1_s_sub_block(b, i64c(c));
  return {broadcast(s.dl, 8), broadcast(b.bind(iq1_min(s.dl, s.delta)), 8)};
}

// --- iq1_m: 32 bytes of low index bits (group 4j + l), 16 bytes qh (byte 2j + h, h =
// l / 2: nibble l & 1 holds index bits 8..10 and, in bit 3, the sign of delta), 8 bytes of
// scales: u16 k holds the 3-bit scales of sub-blocks 2k, 2k + 1 (halves h at bits 6(j & 1)
// + 3h) and, in bits 12..15, bits 4k..4k+3 of the f16 d. x = dl * (grid + delta),
// dl = d * (2 s + 1).

NodeRef iq1_m_d(const BlockAccess& b) {
  NodeRef bits = i64c(0);
  for (int k = 0; k < 4; ++k)
    bits = bit_or(bits, shl(shr(byte_i64(b, "scales", i64c(2 * k + 1)), i64c(4)), i64c(4 * k)));
  return cast(kF32, bitcast({Scalar::f16, 1}, cast(kI32, bits)));
}

// The scale of half h (i64) of sub-block j (i64), given d.
NodeRef iq1_m_scale(const BlockAccess& b, const NodeRef& d, const NodeRef& j, const NodeRef& h) {
  NodeRef sc = u16_at(b, "scales", mul(shr(j, i64c(1)), i64c(2)));
  NodeRef s = bit_and(shr(sc, add(mul(bit_and(j, i64c(1)), i64c(6)), mul(h, i64c(3)))), i64c(7));
  return mul(d, to_f32(add(mul(s, i64c(2)), i64c(1))));
}

// The qh nibble of group l (i64) of sub-block j (i64).
NodeRef iq1_m_nibble(const BlockAccess& b, const NodeRef& j, const NodeRef& l) {
  NodeRef byte = byte_i64(b, "qh", add(mul(j, i64c(2)), shr(l, i64c(1))));
  return bit_and(shr(byte, mul(bit_and(l, i64c(1)), i64c(4))), i64c(15));
}

NodeRef iq1_m_index(const BlockAccess& b, const NodeRef& j, const NodeRef& l, const NodeRef& nibble) {
  return bit_or(byte_i64(b, "qs", add(mul(j, i64c(4)), l)), shl(bit_and(nibble, i64c(7)), i64c(8)));
}

NodeRef iq1_m_negative(const NodeRef& nibble) { return binary(BinaryOp::ne, bit_and(nibble, i64c(8)), i64c(0)); }

NodeRef iq1_m_one(const BlockAccess& b, const NodeRef& e) {
  const Position p = position(b, e);
  NodeRef dl = iq1_m_scale(b, iq1_m_d(b), p.j, shr(p.l, i64c(1)));
  NodeRef nibble = b.bind(iq1_m_nibble(b, p.j, p.l));
  NodeRef grid = grid_value(b, kIq1s, iq1_m_index(b, p.j, p.l, nibble), p.k);
  return mul(dl, add(to_f32(grid), iq1_delta(iq1_m_negative(nibble))));
}

// Sub-block j's (i64) scales of its two halves, and per group l its grid values (i8 x 8)
// and delta (f32).
struct Iq1mSubBlock {
  NodeRef dl[2], grid[4], delta[4];
};
Iq1mSubBlock iq1_m_sub_block(const BlockAccess& b, const NodeRef& j) {
  Iq1mSubBlock s;
  NodeRef d = b.bind(iq1_m_d(b));
  for (int h = 0; h < 2; ++h) s.dl[h] = b.bind(iq1_m_scale(b, d, j, i64c(h)));
  for (int l = 0; l < 4; ++l) {
    NodeRef nibble = b.bind(iq1_m_nibble(b, j, i64c(l)));
    s.grid[l] = grid_entry(b, kIq1s, iq1_m_index(b, j, i64c(l), nibble));
    s.delta[l] = b.bind(iq1_delta(iq1_m_negative(nibble)));
  }
  return s;
}

NodeRef iq1_m_chunk(const BlockAccess& b, const NodeRef& first) {
  const Iq1mSubBlock s = iq1_m_sub_block(b, b.bind(shr(first, i64c(5))));
  NodeRef delta = concat4(broadcast(s.delta[0], 8), broadcast(s.delta[1], 8), broadcast(s.delta[2], 8), broadcast(s.delta[3], 8));
  NodeRef values = add(to_f32(concat4(s.grid[0], s.grid[1], s.grid[2], s.grid[3])), delta);
  return mul(concat(broadcast(s.dl[0], 16), broadcast(s.dl[1], 16)), values);
}

NodeRef iq1_m_sub_integers(const BlockAccess& b, int c) {
  const Iq1mSubBlock s = iq1_m_sub_block(b, i64c(c));
  return iq1_unsigned(concat4(s.grid[0], s.grid[1], s.grid[2], s.grid[3]));
}

// Per 4 elements: group l covers lanes 2l, 2l + 1 and lies in half l / 2.
SubScales iq1_m_sub_scales(const BlockAccess& b, int c) {
  const Iq1mSubBlock s = iq1_m_sub_block(b, i64c(c));
  NodeRef min[4];
  for (int l = 0; l < 4; ++l) min[l] = broadcast(b.bind(iq1_min(s.dl[l / 2], s.delta[l])), 2);
  return {concat(broadcast(s.dl[0], 4), broadcast(s.dl[1], 4)), concat4(min[0], min[1], min[2], min[3])};
}

// A signed grid type's entry: its fields and one-element rule, the rest from its groups
// and scales.
template <SignedGroups (*kGroups)(const BlockAccess&, const NodeRef&), Halves (*kScales)(const BlockAccess&, const NodeRef&)>
BlockFormat signed_format(ir::DType dtype, std::vector<BlockField> fields, NodeRef (*one)(const BlockAccess&, const NodeRef&)) {
  return BlockFormat{.dtype = dtype,
                     .fields = std::move(fields),
                     .one = one,
                     .chunk = signed_chunk<kGroups>,
                     .sub_integers = signed_sub_integers<kGroups>,
                     .sub_scales = signed_scales<kScales>};
}

}  // namespace

std::vector<BlockFormat> iq_grid_block_formats() {
  using S = Scalar;
  using ir::DType;
  return {
      signed_format<iq3_xxs_groups, iq3_xxs_scales>(
          DType::iq3_xxs, {{"d", 0, 2, S::f16, 16}, {"qs", 2, 64, S::u8, 8}, {"scales_signs", 66, 32, S::u8, 7}},
          iq3_xxs_one),
      signed_format<iq3_s_groups, iq3_s_scales>(
          DType::iq3_s,
          {{"d", 0, 2, S::f16, 16}, {"qs", 2, 64, S::u8, 8}, {"qh", 66, 8, S::u8, 1}, {"signs", 74, 32, S::u8, 1},
           {"scales", 106, 4, S::u8, 4}},
          iq3_s_one),
      signed_format<iq2_xxs_groups, iq2_xxs_scales>(DType::iq2_xxs, {{"d", 0, 2, S::f16, 16}, {"qs", 2, 64, S::u8, 8}},
                                                               iq2_xxs_one),
      signed_format<iq2_xs_groups, iq2_nibble_scales>(
          DType::iq2_xs, {{"d", 0, 2, S::f16, 16}, {"qs", 2, 64, S::u8, 16}, {"scales", 66, 8, S::u8, 4}}, iq2_xs_one),
      signed_format<iq2_s_groups, iq2_nibble_scales>(
          DType::iq2_s,
          {{"d", 0, 2, S::f16, 16}, {"qs", 2, 32, S::u8, 8}, {"signs", 34, 32, S::u8, 1}, {"qh", 66, 8, S::u8, 2},
           {"scales", 74, 8, S::u8, 4}},
          iq2_s_one),
      {.dtype = DType::iq1_s,
       .fields = {{"d", 0, 2, S::f16, 16}, {"qs", 2, 32, S::u8, 8}, {"qh", 34, 16, S::u8, 16}},
       .one = iq1_s_one,
       .chunk = iq1_s_chunk,
       .sub_integers = iq1_s_sub_integers,
       .sub_scales = iq1_s_sub_scales},
      {.dtype = DType::iq1_m,
       .fields = {{"qs", 0, 32, S::u8, 8}, {"qh", 32, 16, S::u8, 4}, {"scales", 48, 8, S::u8, 3}},
       .one = iq1_m_one,
       .chunk = iq1_m_chunk,
       .sub_integers = iq1_m_sub_integers,
       .sub_scales = iq1_m_sub_scales},
  };
}

}  // namespace moat::jit
