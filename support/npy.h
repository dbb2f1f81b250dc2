// NumPy .npy files (format 1.0): f32 arrays written for `moat run --logits-out` and
// read back by tests and tools.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace moat {

// Writes a C-order little-endian float32 array. UserError naming the path when it
// cannot be written.
void write_npy_f32(const std::string& path, const std::vector<int64_t>& shape, const std::vector<float>& values);

struct NpyF32 {
  std::vector<int64_t> shape;
  std::vector<float> values;
};
// Reads a float32 or int32 C-order .npy (format 1.x / 2.x; int32 values as floats, exact
// below 2^24: indices). UserError naming the path otherwise.
NpyF32 read_npy_f32(const std::string& path);

}  // namespace moat
