// The narrow storage floats (f16, bf16, E4M3FN f8) converted to and from f32 as Kernel
// IR on their bits (written once; support/half.h is the independent reference). Used by
// `legalize_numerics` for every conversion a target does not declare native.
#pragma once

#include "jit/kir.h"

namespace moat::jit {

bool is_narrow_float(Scalar s);
// x (f16 / bf16 / f8, any lanes) as f32, exactly. Shared values go through `bind`.
NodeRef narrow_to_f32(const NodeRef& x, const Binder& bind);
// x (f32, any lanes) rounded to `to` (f16 / bf16 / f8) to nearest even.
NodeRef f32_to_narrow(const NodeRef& x, Scalar to, const Binder& bind);

}  // namespace moat::jit
