// The conformance harness shared by every executable backend: a graph runs through
// lowering + the device and each output is compared with the reference interpreter.
//
// Tolerances, stated once, by output dtype (|got - want| <= tol * max(1, |want|)):
//   f32   1e-4   sums may be accumulated in another order (vector lanes, tiles)
//   f16   2e-3   one f16 ulp (2^-10) of a result rounded from a slightly different f32
//   bf16  1.6e-2 one bf16 ulp (2^-7), likewise
//   f8    0.26   one e4m3 ulp (2^-3), likewise
//   integers and bool: exact. NaN matches NaN; infinities match exactly.
#pragma once

#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <string>

#include "backends/cpu/llvm_verify.h"
#include "backends/device.h"
#include "ir/builder.h"
#include "ir/interpreter.h"
#include "jit/block_formats.h"
#include "jit/emit_llvm.h"
#include "runtime/kernel_cache.h"
#include "jit/lower.h"
#include "jit/weight_packing.h"
#include "jit/schedule.h"
#include "runtime/device_target.h"
#include "runtime/executor.h"
#include "support/strings.h"

namespace moat::testing {

inline double tolerance_of(ir::DType d) {
  switch (d) {
    case ir::DType::f32: return 1e-4;
    case ir::DType::f16: return 2e-3;
    case ir::DType::bf16: return 1.6e-2;
    case ir::DType::f8_e4m3: return 0.26;
    default: return 0;
  }
}

// Compares every element; reports the first few mismatches with their index.
inline void expect_close(const ir::HostTensor& got, const ir::HostTensor& want, const std::string& what) {
  REQUIRE_MESSAGE(got.shape() == want.shape(), what, ": shape differs");
  REQUIRE_MESSAGE(got.dtype() == want.dtype(), what, ": dtype differs");
  const double tol = tolerance_of(want.dtype());
  int reported = 0, bad = 0;
  if (ir::is_float(want.dtype())) {
    std::vector<float> g = got.to_f32(), w = want.to_f32();
    for (size_t i = 0; i < w.size(); ++i) {
      bool ok = std::isnan(w[i]) ? std::isnan(g[i])
                : std::isinf(w[i]) ? g[i] == w[i]
                                   : std::fabs(static_cast<double>(g[i]) - w[i]) <= tol * std::max(1.0, std::fabs(static_cast<double>(w[i])));
      if (!ok) {
        ++bad;
        if (reported++ < 4) FAIL_CHECK(what << ": element " << i << " is " << g[i] << ", want " << w[i]);
      }
    }
  } else {
    std::vector<int64_t> g = got.to_i64(), w = want.to_i64();
    for (size_t i = 0; i < w.size(); ++i) {
      if (g[i] != w[i]) {
        ++bad;
        if (reported++ < 4) FAIL_CHECK(what << ": element " << i << " is " << g[i] << ", want " << w[i]);
      }
    }
  }
  CHECK_MESSAGE(bad == 0, what, ": ", bad, " of ", want.numel(), " elements differ");
}

// The first node of `graph` the device cannot run (Device::supports_op over the node's
// operand and result dtypes), as "op over dtypes"; "" when it can run them all.
inline std::string unsupported_node(const backends::Device& device, const ir::Graph& graph) {
  for (const ir::Node& node : graph.nodes) {
    std::vector<std::string> dtypes;
    for (ir::NodeId operand : node.operands) dtypes.emplace_back(ir::dtype_name(graph.type(operand).dtype));
    dtypes.emplace_back(ir::dtype_name(node.type.dtype));
    if (!device.supports_op(ir::op_name(node.op), dtypes))
      return std::string(ir::op_name(node.op)) + " over " + join(dtypes, ", ");
  }
  return "";
}

// One executable backend under test; or, without a device, a collector of the distinct
// kernels the cases lower to under a schedule (for the emitters' validation tests).
// With a device, a case whose graph has an op the device does not support (supports_op)
// is not run: it is counted in `unsupported`, naming the op and dtypes.
struct BackendUnderTest {
  std::unique_ptr<backends::Device> device;
  runtime::KernelCache cache{{}};
  jit::Schedule schedule;
  std::vector<jit::Kernel> collected;  // without a device: every distinct kernel, by name
  std::set<std::string> collected_names;
  // Of those, the ones that read a packed weight (jit/weight_packing.h): CPU kernels only,
  // as only the CPU schedule packs.
  std::set<std::string> packed_names;
  runtime::ExecutorOptions options;
  int checked = 0;                       // cases run on the device and compared
  std::vector<std::string> unsupported;  // cases not run: "what: op over dtypes"

  explicit BackendUnderTest(std::unique_ptr<backends::Device> d, runtime::ExecutorOptions o = {})
      : device(std::move(d)), schedule(runtime::schedule_for(device->properties())), options(std::move(o)) {}
  explicit BackendUnderTest(jit::Schedule s) : schedule(s) {}

  // Runs `graph` on the device and compares each output with the interpreter.
  void check(const ir::Graph& graph, const ir::Bindings& bindings, const std::string& what) {
    if (device) {
      if (std::string op = unsupported_node(*device, graph); !op.empty()) {
        unsupported.push_back(what + ": " + op);
        return;
      }
    }
    jit::Plan plan = jit::lower(graph, bindings.symbols, schedule);
    if (!device) {
      for (jit::PlanKernel& pk : plan.kernels) {
        for (int arg : pk.args)
          if (!jit::packed_weight_of(plan.buffers[static_cast<size_t>(arg)].name).empty()) packed_names.insert(pk.kernel.name);
        if (collected_names.insert(pk.kernel.name).second) collected.push_back(std::move(pk.kernel));
      }
      return;
    }
    ++checked;
    std::vector<ir::HostTensor> want = ir::interpret(graph, bindings);
    if (runtime::target_of(device->properties()).format == "ll") {
      // every emitted .ll parses back and passes LLVM's verifier
      for (const jit::PlanKernel& pk : plan.kernels)
        CHECK_MESSAGE(backends::cpu::verify_llvm_ir(jit::emit_llvm(pk.kernel)) == "", what, ": kernel ", pk.kernel.name);
    }
    runtime::Executor exec(*device, cache, std::move(plan), options);
    std::vector<ir::HostTensor> got = exec.run(bindings);
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < want.size(); ++i) expect_close(got[i], want[i], what + " output " + std::to_string(i));
  }
};

// Random values in [lo, hi) from a fixed seed.
inline std::vector<float> random_values(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

inline int64_t count(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

inline ir::TensorType tensor_type(ir::DType d, const std::vector<int64_t>& shape) { return {d, ir::static_shape(shape)}; }

}  // namespace moat::testing

#include "jit/block_formats.h"
#include "support/error.h"
#include "support/half.h"

namespace moat::testing {

// A random tensor of any dtype: floats in [-1, 1) (rounded to the dtype), integers in
// [-50, 50) ([0, 100) for u8), bools, q8_0 / q4_0 / q8_k quantised from random floats, other
// block-quantised dtypes from random blocks whose f16 fields (the block format's: super-
// block scales, mins) are small scales and whose E8M0 exponent (mxfp4's e) is 2^-8..2^-4.
inline ir::HostTensor random_tensor(ir::DType d, const std::vector<int64_t>& shape, uint32_t seed) {
  const int64_t n = count(shape);
  std::mt19937 rng(seed);
  const jit::BlockFormat* format = jit::find_block_format(d);
  if (format != nullptr && d != ir::DType::q8_0 && d != ir::DType::q4_0 && d != ir::DType::q8_k) {
    const int64_t blocks = n / ir::dtype_block_elems(d), bytes = ir::dtype_block_bytes(d);
    std::vector<uint8_t> raw(static_cast<size_t>(blocks * bytes));
    for (uint8_t& b : raw) b = static_cast<uint8_t>(rng());
    for (int64_t blk = 0; blk < blocks; ++blk) {
      uint8_t* p = raw.data() + blk * bytes;
      const uint16_t scale = f32_to_f16(0.002f + 0.001f * static_cast<float>(rng() % 8));
      for (const jit::BlockField& f : format->fields) {
        if (f.scalar == jit::Scalar::f16) std::memcpy(p + f.offset, &scale, 2);
        if (d == ir::DType::mxfp4 && f.name == "e") p[f.offset] = static_cast<uint8_t>(120 + rng() % 5);
        if (d == ir::DType::iq1_m && f.name == "scales")  // d: the top nibbles of its 4 u16 (ir/quant_iq_grids.h)
          for (int k = 0; k < 4; ++k)
            p[f.offset + 2 * k + 1] = static_cast<uint8_t>((p[f.offset + 2 * k + 1] & 0x0f) | (((scale >> (4 * k)) & 0xf) << 4));
      }
    }
    return ir::HostTensor::from_bytes(d, shape, std::move(raw));
  }
  if (ir::is_int(d) || d == ir::DType::boolean) {
    std::vector<int64_t> v(static_cast<size_t>(n));
    for (int64_t& x : v) x = d == ir::DType::boolean ? rng() % 2 : d == ir::DType::u8 ? rng() % 100 : static_cast<int64_t>(rng() % 100) - 50;
    return ir::HostTensor::from_i64(shape, v, d);
  }
  return ir::HostTensor::from_f32(shape, random_values(static_cast<size_t>(n), seed), d);
}

}  // namespace moat::testing
