// Device::supports_op answers per op and dtype: the backends' table of op names
// (backends/op_support.h, which may not include ir/) is exactly ir/ops.h's list, its
// arithmetic dtypes are ir/dtype.h's, and each backend's answer follows its dtypes.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "backends/device.h"
#include "backends/op_support.h"
#include "ir/dtype.h"
#include "ir/ops.h"

using namespace moat;
using namespace moat::backends;

TEST_CASE("op_support: the op names are ir/ops.h's, in its order") {
  std::vector<std::string> ir_ops;
#define MOAT_X(op, kind, lo, hi) ir_ops.emplace_back(ir::op_name(ir::Op::op));
  MOAT_IR_OPS(MOAT_X)
#undef MOAT_X
  std::vector<std::string> table(lowered_op_names().begin(), lowered_op_names().end());
  CHECK(table == ir_ops);
}

TEST_CASE("op_support: arithmetic dtypes are ir's plain floats, integers and bool") {
  std::set<std::string> want, got(arithmetic_dtype_names().begin(), arithmetic_dtype_names().end());
  std::vector<ir::DType> all;
#define MOAT_X(id, name, elems, bytes, kind) all.push_back(ir::DType::id);
  MOAT_IR_DTYPES(MOAT_X)
#undef MOAT_X
  for (ir::DType d : all)
    if ((ir::is_float(d) && d != ir::DType::f8_e4m3) || ir::is_int(d) || d == ir::DType::boolean)
      want.insert(std::string(ir::dtype_name(d)));
  CHECK(got == want);
}

TEST_CASE("op_support: per op and dtype") {
  const std::vector<std::string> device{"f32", "f16", "f8_e4m3", "i32", "q8_0", "q4_k"};
  auto ok = [&](const char* op, std::vector<std::string> dtypes) { return jit_supports_op(op, dtypes, device); };
  CHECK(ok("add", {"f32", "f32", "f32"}));
  CHECK_FALSE(ok("add", {"bf16", "bf16", "bf16"}));  // not a device dtype
  CHECK_FALSE(ok("frobnicate", {"f32"}));             // not an op the JIT lowers
  CHECK(ok("matmul", {"f32", "q4_k", "f32"}));        // quantised B is decoded by the matmul
  CHECK(ok("matmul", {"f32", "f8_e4m3", "f32", "f32"}));
  CHECK(ok("gather", {"q8_0", "i32", "f32"}));
  CHECK(ok("cast", {"f32", "q8_0"}));
  CHECK_FALSE(ok("exp", {"q8_0", "q8_0"}));  // storage types are not computed on
  CHECK_FALSE(ok("reduce_sum", {"f8_e4m3", "f8_e4m3"}));
  CHECK_FALSE(ok("concat", {"q4_k", "q4_k", "q4_k"}));
}

TEST_CASE("op_support: the CPU device answers through the table") {
  auto cpu = open_cpu_device({.threads = 1});
  std::vector<std::string> f32{"f32", "f32"}, q{"q8_0", "q8_0"};
  CHECK(cpu->supports_op("exp", f32));
  CHECK_FALSE(cpu->supports_op("exp", q));
  CHECK_FALSE(cpu->supports_op("no_such_op", f32));
}
