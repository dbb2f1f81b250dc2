// Choosing the next token from a row of logits: greedy (temperature 0) or sampling with
// temperature, top-k, top-p (nucleus) and min-p filters, after a repetition penalty over
// the recent tokens. Order (llama.cpp's): penalty, top-k, temperature softmax, top-p,
// min-p, draw. The same seed and the same logits give the same tokens.
#pragma once

#include <cstdint>
#include <random>
#include <span>

namespace moat::runtime {

struct SamplingOptions {
  double temperature = 0.0;     // 0: greedy (argmax, ties to the lower id)
  int64_t top_k = 0;            // keep the k most likely; 0: all
  double top_p = 1.0;           // keep the smallest set whose probability reaches p
  double min_p = 0.0;           // drop tokens below min_p x the best probability
  double repeat_penalty = 1.0;  // > 1 discourages the last `repeat_last_n` tokens
  int64_t repeat_last_n = 64;
  uint64_t seed = 0;
};

class Sampler {
 public:
  // UserError naming the option when a value is out of range.
  explicit Sampler(const SamplingOptions& options);

  // The next token given `logits` [n_vocab] and the tokens so far (prompt included).
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);

 private:
  SamplingOptions o_;
  std::mt19937_64 rng_;
};

}  // namespace moat::runtime
