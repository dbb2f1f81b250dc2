// The packed CPU layout of Q8_0 / Q4_0 / Q5_0 weights (jit/weight_packing.h): the bytes land
// where the layout says, and the lowering packs exactly the weights that only int8
// matmuls read: every packable type on the CPU schedule, Q8_0 / Q4_0 / Q5_0 / Q4_1 / Q5_1 on GPU schedules.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>

#include "ir/builder.h"
#include "ir/quant.h"
#include "ir/quant_iq4.h"
#include "ir/quant_legacy_k_blocks.h"
#include "support/half.h"
#include "ir/tensor.h"
#include "jit/lower.h"
#include "jit/weight_packing.h"
#include "tests/jit/conformance.h"

using namespace moat;

namespace {

bool has_buffer(const jit::Plan& plan, const std::string& name) {
  return std::any_of(plan.buffers.begin(), plan.buffers.end(), [&](const jit::PlanBuffer& b) { return b.name == name; });
}

jit::Schedule cpu_schedule() {
  jit::Schedule s;
  s.gpu = false;
  return s;
}

}  // namespace

TEST_CASE("pack_weight puts every quad and scale where the layout says") {
  for (ir::DType d : {ir::DType::q8_0, ir::DType::q4_0, ir::DType::q5_0, ir::DType::q4_1, ir::DType::q5_1, ir::DType::iq4_nl,
                      ir::DType::mxfp4}) {
    CAPTURE(ir::dtype_name(d));
    const bool q5 = d == ir::DType::q5_0 || d == ir::DType::q5_1, with_min = jit::packed_with_mins(d);
    const int64_t qh_at = with_min ? 4 : 2, scales_per = with_min ? 32 : 16;
    const int64_t rows = 32, k = 64, kb = k / 32, block = ir::dtype_block_bytes(d);
    const ir::HostTensor w = testing::random_tensor(d, {rows, k}, 7);  // q5_0: random bytes (random fifth bits)
    REQUIRE(jit::packable(d, w.shape()));
    const jit::PackedWeight p = jit::pack_weight(d, w.shape(), w.bytes());
    const jit::PackedShape shape = jit::packed_shape(d, w.shape());
    REQUIRE(static_cast<int64_t>(p.quads.size()) == shape.quad_bytes);
    REQUIRE(static_cast<int64_t>(p.scales.size()) == shape.scales);
    const int64_t vectors = jit::packed_vectors(d);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t b = 0; b < kb; ++b) {
        const uint8_t* src = w.bytes().data() + (r * kb + b) * block;
        const int64_t tb = (r / 16) * kb + b, c = r % 16;
        uint16_t scale = src[0], min;  // mxfp4: its one-byte exponent
        if (d != ir::DType::mxfp4) std::memcpy(&scale, src, 2);
        CHECK(p.scales[static_cast<size_t>(tb * scales_per + c)] == scale);
        if (with_min) {
          std::memcpy(&min, src + 2, 2);
          CHECK(p.scales[static_cast<size_t>(tb * scales_per + 16 + c)] == min);
        }
        const uint8_t* qs = d == ir::DType::mxfp4 ? src + 1 : src + qh_at + (q5 ? 4 : 0);
        for (int64_t v = 0; v < vectors; ++v)
          for (int64_t i = 0; i < 4; ++i) {
            uint8_t want = 0;
            if (q5 && v == 4) {  // bit q: element 4q + i's fifth bit (bit 4q + i of qh)
              for (int64_t q = 0; q < 8; ++q)
                want |= static_cast<uint8_t>(((src[qh_at + q / 2] >> (4 * (q % 2) + i)) & 1) << q);
            } else {  // the block's quant bytes (q5's vector 4 is not one: the block ends there)
              want = d == ir::DType::q8_0 ? static_cast<uint8_t>(qs[4 * v + i] + 128) : qs[4 * v + i];
            }
            REQUIRE(p.quads[static_cast<size_t>((tb * vectors + v) * 64 + c * 4 + i)] == want);
          }
        if (!q5) continue;
        // the kernels' decode (jit/matmul/int8_tiles.cpp): quad q's 5-bit values are its
        // nibbles | ((fifth-bit vector shifted by 4 - q) & 16), element 4q + i in byte i
        for (int64_t q = 0; q < 8; ++q)
          for (int64_t i = 0; i < 4; ++i) {
            const uint8_t packed = p.quads[static_cast<size_t>((tb * vectors + q % 4) * 64 + c * 4 + i)];
            const uint8_t bits = p.quads[static_cast<size_t>((tb * vectors + 4) * 64 + c * 4 + i)];
            const uint8_t nibble = q < 4 ? packed & 15 : packed >> 4;
            const auto shifted = static_cast<uint8_t>(q <= 4 ? bits << (4 - q) : bits >> (q - 4));
            const int64_t e = 4 * q + i;
            const uint8_t stored = e < 16 ? qs[e] & 15 : qs[e - 16] >> 4;
            const uint8_t file = static_cast<uint8_t>(stored | (((src[qh_at + e / 8] >> (e % 8)) & 1) << 4));
            REQUIRE((nibble | (shifted & 16)) == file);
          }
      }
    }
  }
  CHECK_FALSE(jit::packable(ir::DType::q8_0, {24, 64}));  // rows not a multiple of 16
  CHECK_FALSE(jit::packable(ir::DType::q4_k, {32, 96}));  // K not a multiple of 256
  CHECK_FALSE(jit::packable(ir::DType::iq2_xxs, {32, 256}));
  CHECK(jit::packed_weight_of(jit::packed_scales_name("blk.0.w")) == "blk.0.w");
  CHECK(jit::packed_weight_of("blk.0.w").empty());
}

TEST_CASE("pack_weight lays K-quant super-blocks out with unpacked sub-block scales") {
  const int64_t rows = 32, k = 512, sb = k / 256;
  for (ir::DType d : {ir::DType::q2_k, ir::DType::q3_k, ir::DType::q4_k, ir::DType::q5_k, ir::DType::q6_k, ir::DType::iq4_xs}) {
    const ir::HostTensor w = testing::random_tensor(d, {rows, k}, 9);  // raw blocks: every bit pattern
    REQUIRE(jit::packable(d, w.shape()));
    const jit::PackedWeight p = jit::pack_weight(d, w.shape(), w.bytes());
    const jit::PackedShape shape = jit::packed_shape(d, w.shape());
    REQUIRE(static_cast<int64_t>(p.quads.size()) == shape.quad_bytes);
    REQUIRE(static_cast<int64_t>(p.scales.size()) == shape.scales);
    const int64_t tile_bytes = jit::packed_block_bytes(d), tile_scales = jit::packed_block_scales(d);
    for (int64_t r = 0; r < rows; ++r) {
      for (int64_t b = 0; b < sb; ++b) {
        const uint8_t* src = w.bytes().data() + (r * sb + b) * ir::dtype_block_bytes(d);
        const int64_t tb = (r / 16) * sb + b, c = r % 16;
        const uint8_t* quads = p.quads.data() + tb * tile_bytes;
        const uint16_t* scales = p.scales.data() + tb * tile_scales;
        if (d == ir::DType::q4_k) {
          ir::BlockQ4_K blk;
          std::memcpy(&blk, src, sizeof blk);
          CHECK(scales[c] == blk.d);
          CHECK(scales[16 + c] == blk.dmin);
          for (int64_t i = 0; i < 128; ++i) REQUIRE(quads[(i / 4) * 64 + c * 4 + i % 4] == blk.qs[i]);
          for (int s = 0; s < 8; ++s) {
            uint8_t sc, m;
            ir::q4_k_scale_min(blk.scales, s, &sc, &m);
            REQUIRE(quads[2048 + 16 * s + c] == sc);
            REQUIRE(quads[2176 + 16 * s + c] == m);
          }
        } else if (d == ir::DType::q2_k || d == ir::DType::q3_k) {
          float decoded[256];
          ir::dequantize_row(d, src, decoded, 256);
          const float dd = f16_to_f32(d == ir::DType::q2_k ? reinterpret_cast<const ir::BlockQ2_K*>(src)->d
                                                           : reinterpret_cast<const ir::BlockQ3_K*>(src)->d);
          CHECK(f16_to_f32(scales[c]) == dd);
          for (int64_t i = 0; i < 256; ++i) {  // the kernel's reading of element i, as the reference decodes it
            const int64_t n = i / 128, j = (i / 32) % 4, l = i % 32, s = i / 16;
            const int crumb = (quads[(8 * n + l / 4) * 64 + c * 4 + l % 4] >> (2 * j)) & 3;
            if (d == ir::DType::q2_k) {
              const uint8_t byte = quads[1024 + 16 * s + c];
              const float dmin = f16_to_f32(scales[16 + c]);
              REQUIRE((dd * static_cast<float>(byte & 15)) * static_cast<float>(crumb) - dmin * static_cast<float>(byte >> 4) ==
                      decoded[i]);
            } else {
              const int high = (quads[1024 + (l / 4) * 64 + c * 4 + l % 4] >> (4 * n + j)) & 1;
              const int sc = static_cast<int8_t>(quads[1536 + 16 * s + c]);
              REQUIRE((dd * static_cast<float>(sc)) * static_cast<float>((crumb | (high << 2)) - 4) == decoded[i]);
            }
          }
        } else if (d == ir::DType::iq4_xs) {
          ir::BlockIQ4_XS blk;
          std::memcpy(&blk, src, sizeof blk);
          CHECK(scales[c] == blk.d);
          float decoded[256];
          ir::dequantize_row(d, src, decoded, 256);
          for (int64_t i = 0; i < 256; ++i) {  // the kernel's reading: codebook[nibble of vector 4s + l % 16 / 4] x scale
            const int64_t s = i / 32, l = i % 32;
            const uint8_t byte = quads[(4 * s + (l % 16) / 4) * 64 + c * 4 + l % 4];
            const int nibble = l < 16 ? byte & 15 : byte >> 4;
            const int sc = static_cast<int8_t>(quads[2048 + 16 * s + c]);
            REQUIRE((f16_to_f32(blk.d) * static_cast<float>(sc)) * static_cast<float>(ir::kIq4nlValues[nibble]) == decoded[i]);
          }
        } else if (d == ir::DType::q5_k) {
          ir::BlockQ5_K blk;
          std::memcpy(&blk, src, sizeof blk);
          CHECK(scales[c] == blk.d);
          CHECK(scales[16 + c] == blk.dmin);
          float decoded[256];
          ir::dequantize_row(d, src, decoded, 256);
          for (int64_t i = 0; i < 256; ++i) {  // the kernel's reading: nibble | (qh bit s) << 4, as the reference decodes it
            const int64_t s = i / 32, l = i % 32, j = s / 2;
            const uint8_t byte = quads[(8 * j + l / 4) * 64 + c * 4 + l % 4];
            const uint8_t high = quads[2048 + (l / 4) * 64 + c * 4 + l % 4];
            const int q = ((s % 2 == 0 ? byte & 15 : byte >> 4) | (((high >> s) & 1) << 4));
            const int sc = quads[2560 + 16 * s + c], m = quads[2688 + 16 * s + c];
            REQUIRE((f16_to_f32(blk.d) * static_cast<float>(sc)) * static_cast<float>(q) -
                        f16_to_f32(blk.dmin) * static_cast<float>(m) ==
                    decoded[i]);
          }
        } else {
          ir::BlockQ6_K blk;
          std::memcpy(&blk, src, sizeof blk);
          CHECK(scales[c] == blk.d);
          // the values as the reference decoder sees them: x = d * scale * (q - 32)
          float decoded[256];
          ir::dequantize_row(d, src, decoded, 256);
          const float dd = f16_to_f32(blk.d);
          for (int64_t i = 0; i < 256; ++i) {
            const int q = quads[(i / 4) * 64 + c * 4 + i % 4];
            REQUIRE(q < 64);
            REQUIRE((dd * static_cast<float>(blk.scales[i / 16])) * static_cast<float>(q - 32) == decoded[i]);
          }
          for (int s = 0; s < 16; ++s) REQUIRE(static_cast<int8_t>(quads[4096 + 16 * s + c]) == blk.scales[s]);
        }
      }
    }
  }
}

TEST_CASE("the lowering packs weights read only by int8 matmuls: every packable type on the CPU, the legacy 32-blocks on GPUs") {
  ir::Graph g;
  ir::Builder b(g);
  const ir::Dim t = b.symbol("T");
  ir::NodeId x = b.input("x", {ir::DType::f32, {t, ir::Dim::of(64)}});
  ir::NodeId w = b.param("w", {ir::DType::q4_0, ir::static_shape({32, 64})});
  ir::NodeId shared = b.param("shared", {ir::DType::q8_0, ir::static_shape({32, 64})});
  ir::NodeId out = b.matmul_weight(x, w);
  // `shared` is also read as a plain float tensor: it keeps the file's layout
  ir::NodeId plain = b.matmul(x, b.cast(shared, ir::DType::f32), true);
  g.outputs = {out, b.add(b.matmul_weight(x, shared), plain)};
  const jit::Plan cpu = jit::lower(g, {{"T", 3}}, cpu_schedule());
  CHECK(has_buffer(cpu, jit::packed_quads_name("w")));
  CHECK(has_buffer(cpu, jit::packed_scales_name("w")));
  CHECK_FALSE(has_buffer(cpu, "w"));
  CHECK(has_buffer(cpu, "shared"));
  CHECK_FALSE(has_buffer(cpu, jit::packed_quads_name("shared")));
  // GPUs pack what gpu_int8_tiles reads (Q8_0, Q4_0, Q5_0, Q4_1, Q5_1) and leave IQ4_NL as the file has it
  ir::Graph g2;
  ir::Builder b2(g2);
  ir::NodeId x2 = b2.input("x", {ir::DType::f32, {b2.symbol("T"), ir::Dim::of(64)}});
  ir::NodeId w4 = b2.param("w4", {ir::DType::q4_0, ir::static_shape({32, 64})});
  ir::NodeId w5 = b2.param("w5", {ir::DType::iq4_nl, ir::static_shape({32, 64})});
  g2.outputs = {b2.add(b2.matmul_weight(x2, w4), b2.matmul_weight(x2, w5))};
  jit::Schedule gpu;
  gpu.gpu = true;
  gpu.work_group_size = 256;
  gpu.local_memory_bytes = 32 * 1024;
  const jit::Plan on_gpu = jit::lower(g2, {{"T", 3}}, gpu);
  CHECK(has_buffer(on_gpu, jit::packed_quads_name("w4")));
  CHECK_FALSE(has_buffer(on_gpu, "w4"));
  CHECK(has_buffer(on_gpu, "w5"));
  CHECK_FALSE(has_buffer(on_gpu, jit::packed_quads_name("w5")));
  const jit::Plan on_cpu = jit::lower(g2, {{"T", 3}}, cpu_schedule());
  CHECK(has_buffer(on_cpu, jit::packed_quads_name("w5")));
  // per-matrix rows not in tiles of 16 (two matrices of 8 rows): a tile would straddle them
  ir::Graph g3;
  ir::Builder b3(g3);
  ir::NodeId x3 = b3.input("x", {ir::DType::f32, ir::static_shape({2, 1, 64})});
  ir::NodeId w8 = b3.param("w8", {ir::DType::q4_0, ir::static_shape({2, 8, 64})});
  g3.outputs = {b3.matmul_weight(x3, w8)};
  const jit::Plan halves = jit::lower(g3, {}, gpu);
  CHECK(has_buffer(halves, "w8"));
  CHECK_FALSE(has_buffer(halves, jit::packed_quads_name("w8")));
}

TEST_CASE("pack_float_weight puts row r, element k at ((r / 16) * K + k) * 16 + r % 16") {
  for (ir::DType d : {ir::DType::f32, ir::DType::f16, ir::DType::bf16}) {
    CAPTURE(ir::dtype_name(d));
    const int64_t rows = 48, k = 5;
    const ir::HostTensor w = testing::random_tensor(d, {3, 16, k}, 11);
    REQUIRE(jit::float_packable(d, w.shape()));
    const std::vector<uint8_t> tiles = jit::pack_float_weight(d, w.shape(), w.bytes());
    REQUIRE(tiles.size() == w.bytes().size());
    const auto size = static_cast<size_t>(ir::dtype_block_bytes(d));
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t i = 0; i < k; ++i)
        REQUIRE(std::memcmp(tiles.data() + static_cast<size_t>(((r / 16) * k + i) * 16 + r % 16) * size,
                            w.bytes().data() + static_cast<size_t>(r * k + i) * size, size) == 0);
  }
  CHECK_FALSE(jit::float_packable(ir::DType::f16, {24, 64}));     // rows not a multiple of 16
  CHECK_FALSE(jit::float_packable(ir::DType::f16, {4, 36, 64}));  // 144 rows, but a tile would straddle two matrices
  CHECK_FALSE(jit::float_packable(ir::DType::q8_0, {32, 64}));
  CHECK(jit::packed_weight_of(jit::packed_tiles_name("blk.1.ffn_up_exps.weight")) == "blk.1.ffn_up_exps.weight");
}

TEST_CASE("the lowering tiles float expert tables read only by gathered one-row matmuls, on the CPU") {
  auto plan_of = [](bool also_dense, int64_t rows, const jit::Schedule& s, const jit::LowerOptions& options = {}) {
    ir::Graph g;
    ir::Builder b(g);
    ir::NodeId x = b.input("x", {ir::DType::f32, ir::static_shape({3, 1, rows, 64})});
    ir::NodeId idx = b.input("idx", {ir::DType::i32, ir::static_shape({3, 2})});
    ir::NodeId table = b.param("experts", {ir::DType::f16, ir::static_shape({4, 32, 64})});
    g.outputs = {b.matmul_weight(x, b.gather(table, idx))};
    if (also_dense) g.outputs.push_back(b.matmul(x, b.cast(table, ir::DType::f32), true));
    return jit::lower(g, {}, s, options);
  };
  const jit::Plan tiled = plan_of(false, 1, cpu_schedule());
  CHECK(has_buffer(tiled, jit::packed_tiles_name("experts")));
  CHECK_FALSE(has_buffer(tiled, "experts"));
  // also read another way, or by matmuls of several rows: the file's layout
  CHECK(has_buffer(plan_of(true, 1, cpu_schedule()), "experts"));
  CHECK(has_buffer(plan_of(false, 2, cpu_schedule()), "experts"));
  // a table the caller built in memory: a tiled copy would not replace it
  jit::LowerOptions in_memory;
  in_memory.may_copy = [](const std::string& name) { return name != "experts"; };
  CHECK(has_buffer(plan_of(false, 1, cpu_schedule(), in_memory), "experts"));
  jit::Schedule gpu;
  gpu.gpu = true;
  gpu.work_group_size = 256;
  gpu.local_memory_bytes = 32 * 1024;
  CHECK(has_buffer(plan_of(false, 1, gpu), "experts"));
}

TEST_CASE("the lowering tiles float weights read whole only by transposed matmuls of an f32 A, on the CPU") {
  enum class Also { nothing, untransposed, f16_a, another_op };
  auto plan_of = [](Also also, const jit::Schedule& s, const jit::LowerOptions& options = {}) {
    ir::Graph g;
    ir::Builder b(g);
    ir::NodeId x = b.input("x", {ir::DType::f32, ir::static_shape({5, 64})});
    ir::NodeId w = b.param("w", {ir::DType::f16, ir::static_shape({32, 64})});
    g.outputs = {b.matmul_weight(x, w)};  // the output head's case: the matmul is a graph output
    if (also == Also::untransposed) g.outputs.push_back(b.matmul(b.input("y", {ir::DType::f32, ir::static_shape({5, 32})}), w, false));
    if (also == Also::f16_a) g.outputs.push_back(b.matmul(b.cast(x, ir::DType::f16), w, true));
    if (also == Also::another_op) g.outputs.push_back(b.unary(ir::Op::neg, w));
    return jit::lower(g, {}, s, options);
  };
  const jit::Plan tiled = plan_of(Also::nothing, cpu_schedule());
  CHECK(has_buffer(tiled, jit::packed_tiles_name("w")));
  CHECK_FALSE(has_buffer(tiled, "w"));
  // also read another way: the file's layout
  for (Also also : {Also::untransposed, Also::f16_a, Also::another_op}) {
    const jit::Plan plain = plan_of(also, cpu_schedule());
    CHECK(has_buffer(plain, "w"));
    CHECK_FALSE(has_buffer(plain, jit::packed_tiles_name("w")));
  }
  jit::LowerOptions in_memory;
  in_memory.may_copy = [](const std::string& name) { return name != "w"; };
  CHECK(has_buffer(plan_of(Also::nothing, cpu_schedule(), in_memory), "w"));
  jit::Schedule gpu;
  gpu.gpu = true;
  gpu.work_group_size = 256;
  gpu.local_memory_bytes = 32 * 1024;
  CHECK(has_buffer(plan_of(Also::nothing, gpu), "w"));
}
