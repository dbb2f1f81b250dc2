// moat_sampling_options_default, moat_sampler_*: runtime::Sampler behind a handle.
#include <random>

#include "capi/boundary.h"
#include "capi/handles.h"
#include "support/error.h"

namespace moat::capi {

runtime::SamplingOptions sampling_options(const moat_sampling_options& o) {
  // The runtime checks the values when a Sampler is made, naming the command line's
  // option (--temp is temperature, --top-k top_k, ...).
  runtime::SamplingOptions s;
  s.temperature = o.temperature;
  s.top_k = o.top_k;
  s.top_p = o.top_p;
  s.min_p = o.min_p;
  s.repeat_penalty = o.repeat_penalty;
  s.frequency_penalty = o.frequency_penalty;
  s.presence_penalty = o.presence_penalty;
  s.repeat_last_n = o.repeat_last_n;
  // As `moat run` without --seed: a seed below 2^32 from the system's entropy.
  s.seed = o.seed == MOAT_SEED_RANDOM ? std::random_device{}() : o.seed;
  return s;
}

runtime::Sampler make_sampler(const moat_sampling_options& options) {
  try {
    return runtime::Sampler(sampling_options(options));
  } catch (const UserError& e) {
    user_error("moat_sampling_options (fields named as moat run's options): ", e.what());
  }
}

}  // namespace moat::capi

using moat::capi::guarded;

extern "C" {

moat_status moat_sampling_options_default(moat_sampling_options* options) {
  return guarded(__func__, MOAT_CAPI_BODY {
    MOAT_CAPI_NOT_NULL(options);
    // llama.cpp's common/common.h, as samples/moat/cmd_run.cpp.
    *options = moat_sampling_options{.temperature = 0.8,
                                     .top_k = 40,
                                     .top_p = 0.95,
                                     .min_p = 0.05,
                                     .repeat_penalty = 1.0,
                                     .frequency_penalty = 0.0,
                                     .presence_penalty = 0.0,
                                     .repeat_last_n = 64,
                                     .seed = MOAT_SEED_RANDOM};
    return MOAT_OK;
  });
}

moat_status moat_sampler_create(const moat_sampling_options* options, moat_sampler** sampler) {
  return guarded(__func__, MOAT_CAPI_BODY {
    MOAT_CAPI_NOT_NULL(sampler);
    *sampler = nullptr;
    MOAT_CAPI_NOT_NULL(options);
    *sampler = new moat_sampler{moat::capi::make_sampler(*options)};
    return MOAT_OK;
  });
}

void moat_sampler_free(moat_sampler* sampler) { delete sampler; }

moat_status moat_sampler_sample(moat_sampler* sampler, const float* logits, size_t n_logits, const int32_t* history,
                                size_t n_history, int32_t* token) {
  return guarded(__func__, MOAT_CAPI_BODY {
    MOAT_CAPI_NOT_NULL(sampler);
    MOAT_CAPI_NOT_NULL(logits);
    MOAT_CAPI_NOT_NULL(token);
    MOAT_CAPI_REQUIRE(n_logits >= 1 && n_logits <= INT32_MAX, "n_logits is ", n_logits, "; give the vocabulary's size");
    MOAT_CAPI_REQUIRE(history != nullptr || n_history == 0, "history is NULL but n_history is ", n_history);
    *token = sampler->sampler.sample(std::span<const float>(logits, n_logits),
                                     std::span<const int32_t>(history, n_history));
    return MOAT_OK;
  });
}

}  // extern "C"
