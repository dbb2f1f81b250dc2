// Choosing the next token from a row of logits: greedy (temperature 0) or sampling with
// top-k, top-p (nucleus) and min-p filters and a temperature, after the repetition,
// frequency and presence penalties over the recent tokens. Order (llama.cpp's default
// chain): penalties, top-k, top-p, min-p (both on the untempered softmax), temperature,
// draw. The same seed and the same logits give the same tokens. The defaults here turn
// every filter off; the command line's are llama.cpp's (samples/moat/cmd_run.cpp).
#pragma once

#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace moat::runtime {

struct SamplingOptions {
  double temperature = 0.0;     // 0: greedy (argmax, ties to the lower id)
  int64_t top_k = 0;            // keep the k most likely; 0: all
  double top_p = 1.0;           // keep the smallest set whose probability reaches p
  double min_p = 0.0;           // drop tokens below min_p x the best probability
  double repeat_penalty = 1.0;     // > 1 discourages the last `repeat_last_n` tokens (logit / p or x p)
  double frequency_penalty = 0.0;  // logit -= f x (times the token is among the last `repeat_last_n`)
  double presence_penalty = 0.0;   // logit -= p once when it is among them
  int64_t repeat_last_n = 64;      // tokens the penalties look back over; 0: none; -1: the whole history
  uint64_t seed = 0;
};

// What sample() draws from: candidate tokens with weights proportional to their
// probabilities (greedy: the argmax alone).
struct TokenDistribution {
  std::vector<int32_t> ids;
  std::vector<double> weights;  // > 0, one per id
  double probability(int32_t id) const;  // 0 for a token that is not a candidate
};

class Sampler {
 public:
  // UserError naming the option when a value is out of range.
  explicit Sampler(const SamplingOptions& options);

  // The next token given `logits` [n_vocab] and the tokens so far (prompt included):
  // draw(distribution(logits, history)).
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history);

  // The distribution after the penalties, filters and temperature.
  TokenDistribution distribution(std::span<const float> logits, std::span<const int32_t> history) const;
  // A token drawn from `d` (greedy: its first, drawing no random number).
  int32_t draw(const TokenDistribution& d);
  // A uniform number in [0, 1) from the sampler's generator (speculative acceptance).
  double uniform();
  bool greedy() const { return o_.temperature == 0; }

 private:
  // The penalties on `logits` for the tokens among the last repeat_last_n of `history`.
  void apply_penalties(std::vector<float>& logits, std::span<const int32_t> history) const;

  SamplingOptions o_;
  std::mt19937_64 rng_;
};

}  // namespace moat::runtime
