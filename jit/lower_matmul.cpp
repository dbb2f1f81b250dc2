// matmul: out[.., m, n] = sum_k A[.., m, k] * B(k, n), batch dimensions broadcast. The
// first strategy of jit/matmul/ (matmul_strategies(), in order) that applies to the
// schedule and the node's shapes and dtypes writes the kernel.
#include "jit/matmul/matmul.h"
#include "support/error.h"

namespace moat::jit {

PlanKernel matmul_kernel(LowerContext& ctx, ir::NodeId id, int out) {
  matmul::MatmulBuilder mm(ctx, id, out);
  const matmul::MatmulShape shape = mm.shape();
  for (const matmul::MatmulStrategy* strategy : matmul::matmul_strategies()) {
    if (!strategy->applies(ctx.schedule, shape)) continue;
    std::vector<NodeRef> body = strategy->lower(mm);
    return mm.kb.finish(std::string("matmul_") + std::string(ir::dtype_name(shape.b_dtype)), std::move(body));
  }
  MOAT_INTERNAL_ERROR("matmul ", ir::describe(ctx.graph, id), ": no strategy applies (per_output takes every matmul)");
}

}  // namespace moat::jit
