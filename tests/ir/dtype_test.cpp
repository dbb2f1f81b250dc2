#include <doctest/doctest.h>

#include "ir/dtype.h"

using namespace moat::ir;

TEST_CASE("dtype names round-trip and block sizes follow the GGUF layouts") {
  for (DType t : kAllDTypes) CHECK(parse_dtype(dtype_name(t)) == t);
  CHECK(!parse_dtype("q7_k").has_value());
  CHECK(dtype_row_bytes(DType::q8_0, 64) == 68);
  CHECK(dtype_row_bytes(DType::q4_k, 512) == 288);
  CHECK(dtype_row_bytes(DType::q6_k, 256) == 210);
  CHECK(dtype_row_bytes(DType::iq2_xxs, 512) == 132);
  CHECK(dtype_row_bytes(DType::mxfp4, 64) == 34);
  CHECK(!dtype_row_bytes(DType::q4_0, 33).has_value());
  CHECK(!dtype_row_bytes(DType::f32, INT64_MAX).has_value());
}
