// The per-op capability query shared by the backends (Device::supports_op): which
// Tensor IR ops the JIT lowers, and over which element types, by name. Backends see
// only names (no ir/ include): tests/backends/op_support_test.cpp checks these names
// against ir/ops.h and ir/dtype.h, so the two cannot drift apart.
#pragma once

#include <span>
#include <string>
#include <string_view>

namespace moat::backends {

// Whether kernels of op `op` over element types `dtypes` (operands and result) can run
// on a device that computes with `device_dtypes` (DeviceProperties::dtypes):
//  - `op` is an op the JIT lowers (an unknown name: false);
//  - every dtype is one the device computes with;
//  - an op that computes on its elements (elementwise math, reductions, top-k, the
//    normalisation / softmax / rope composites, concat, take_along, constants, iota)
//    takes only arithmetic types: block-quantised types and f8_e4m3 are storage, read
//    by the ops that decode them (matmul, gather, cast, attention, moe, write_rows, views).
bool jit_supports_op(std::string_view op, std::span<const std::string> dtypes,
                     std::span<const std::string> device_dtypes);

// The op names the JIT lowers, and the element types it computes on directly (for the
// test that checks them against ir/).
std::span<const std::string_view> lowered_op_names();
std::span<const std::string_view> arithmetic_dtype_names();

}  // namespace moat::backends
