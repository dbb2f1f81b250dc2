// A hand-built kernel that reads constant tables (kir.h's table_load) every way a rule
// can: a dynamic scalar index, consecutive lanes from a constant and from a dynamic
// index, a gather (one index per lane), and i8, u8 and i64 elements. Shared by the CPU
// test (tests/jit/kir_test.cpp) and the target validators and OpenCL run
// (tests/jit/emit_targets_test.cpp).
#pragma once

#include <cstdint>
#include <vector>

#include "jit/kir.h"

namespace moat::testing {

// ggml's kvalues_iq4nl, a 16-entry i8 codebook.
inline const std::vector<int64_t> kTableCodes = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};
inline const std::vector<int64_t> kTableBytes = {0, 1, 2, 3, 250, 251, 252, 255};
inline const std::vector<int64_t> kTableWide = {0x0123456789abcdef, -2, INT64_MIN};
// x: a permutation of 0..15 (as floats), the gather's indices; x[0] = 3 starts a dynamic
// run of 4 consecutive elements.
inline const std::vector<float> kTableIndices = {3, 15, 0, 7, 12, 1, 9, 4, 14, 2, 11, 6, 13, 8, 5, 10};
inline constexpr int64_t kTableOut = 70;

// One work-item; buffers x (f32[16]) then out (f32[kTableOut]).
inline jit::Kernel table_kernel() {
  using namespace jit;
  Kernel k;
  k.name = "tables";
  const int x = k.add_buffer({"x", ir::DType::f32, Space::global, 16, false});
  const int out = k.add_buffer({"out", ir::DType::f32, Space::global, kTableOut, true});
  const int codes = k.add_table({"codes", Scalar::i8, kTableCodes});
  const int bytes = k.add_table({"bytes", Scalar::u8, kTableBytes});
  const int wide = k.add_table({"wide", Scalar::i64, kTableWide});
  auto f32 = [](const NodeRef& v) { return cast(kF32.with_lanes(v->type.lanes), v); };
  const NodeRef i = ref("i", kI64);
  NodeRef gather_index = cast({Scalar::i64, 16}, load(k, x, c_i64(0), 16));
  NodeRef start = cast(kI64, load(k, x, c_i64(0)));
  NodeRef w = table_load(k, wide, i);
  k.body = block({
      for_loop("i", c_i64(0), c_i64(16), c_i64(1),
               {store(k, out, i, f32(table_load(k, codes, rem(mul(i, c_i64(7)), c_i64(16)))))}),
      store(k, out, c_i64(16), f32(table_load(k, codes, c_i64(0), 16))),
      store(k, out, c_i64(32), f32(table_load(k, codes, gather_index))),
      store(k, out, c_i64(48), f32(table_load(k, bytes, c_i64(0), 8))),
      for_loop("i", c_i64(0), c_i64(3), c_i64(1),
               {store(k, out, add(i, c_i64(56)), f32(binary(BinaryOp::land, binary(BinaryOp::shr, w, c_i64(4)), c_i64(255)))),
                store(k, out, add(i, c_i64(59)), f32(binary(BinaryOp::land, w, c_i64(255))))}),
      store(k, out, c_i64(62), f32(table_load(k, codes, start, 4))),
      store(k, out, c_i64(66), f32(table_load(k, codes, c_i64(12), 4))),
  });
  return k;
}

inline std::vector<float> table_kernel_expected() {
  std::vector<float> want(kTableOut, 0.0f);
  for (int i = 0; i < 16; ++i) {
    want[i] = static_cast<float>(kTableCodes[(i * 7) % 16]);
    want[16 + i] = static_cast<float>(kTableCodes[i]);
    want[32 + i] = static_cast<float>(kTableCodes[static_cast<size_t>(kTableIndices[i])]);
  }
  for (int i = 0; i < 8; ++i) want[48 + i] = static_cast<float>(kTableBytes[i]);
  for (int i = 0; i < 3; ++i) {
    want[56 + i] = static_cast<float>((kTableWide[i] >> 4) & 255);
    want[59 + i] = static_cast<float>(kTableWide[i] & 255);
  }
  for (int i = 0; i < 4; ++i) {
    want[62 + i] = static_cast<float>(kTableCodes[3 + i]);
    want[66 + i] = static_cast<float>(kTableCodes[12 + i]);
  }
  return want;
}

}  // namespace moat::testing
