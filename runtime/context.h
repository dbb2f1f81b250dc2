// How many tokens a session's latent cache holds: the user's --ctx, else the model's
// training context, within what the host's memory allows.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

namespace moat::runtime {

struct ContextChoice {
  int64_t tokens = 0;
  std::string report;   // one line for the user: the size chosen, and why when capped
  std::string warning;  // "" or why the size chosen is unwise (past the training context)
};

// The bytes of cache a context of `tokens` tokens takes (all layers, parts and sequences);
// never smaller for more tokens.
using CacheBytes = std::function<uint64_t(int64_t tokens)>;

// `requested` > 0: that many tokens, UserError when their cache would need more than
// half of `available_bytes`. `requested` == 0: the model's `model_context`, capped
// (to a multiple of 64, at least 64) to fit that half. `available_bytes` == 0: no cap
// (the system did not say).
ContextChoice choose_context(int64_t requested, int64_t model_context, const CacheBytes& cache_bytes,
                             uint64_t available_bytes);
// The same for a cache of `bytes_per_token` bytes per token.
ContextChoice choose_context(int64_t requested, int64_t model_context, uint64_t bytes_per_token,
                             uint64_t available_bytes);

}  // namespace moat::runtime
