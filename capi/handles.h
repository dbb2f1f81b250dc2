// What the C API's opaque handles are (include/moat.h declares them incomplete).
//
// A session shares ownership of its model, so moat_model_free with sessions alive only
// drops the caller's reference. Each handle is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "backends/device.h"
#include "frontend/model.h"
#include "frontend/tokenizer/tokenizer.h"
#include "include/moat.h"
#include "runtime/kernel_cache.h"
#include "runtime/sampler.h"
#include "runtime/session.h"

namespace moat::capi {

struct ModelState {
  std::string path;
  std::unique_ptr<models::Model> model;
  std::optional<tok::Tokenizer> tokenizer;  // absent when the file has none
  std::string no_tokenizer_reason;          // why it is absent (the tokenizer's UserError)
  int32_t bos = -1, eos = -1;               // -1: none
  std::vector<int32_t> stop_ids;            // what moat_generate stops at (as moat run)
  // Compiled kernels, shared by the model's sessions (thread-safe); on disk where
  // $MOAT_CACHE_DIR / $XDG_CACHE_HOME / $HOME say, as for the command line.
  std::unique_ptr<runtime::KernelCache> kernels;
};

}  // namespace moat::capi

struct moat_model {
  std::shared_ptr<moat::capi::ModelState> state;
};

struct moat_session {
  std::shared_ptr<moat::capi::ModelState> model;  // outlives the session's Session
  std::unique_ptr<moat::backends::Device> device;
  std::unique_ptr<moat::runtime::Session> session;
  // Every token the cache holds, in order (the penalties' history): the first
  // session->cached_tokens() of them.
  std::vector<int32_t> tokens;
  int64_t batch = 512;  // the most tokens per forward pass
};

struct moat_sampler {
  moat::runtime::Sampler sampler;
};

namespace moat::capi {

// The runtime's options from the C struct (a random seed drawn for MOAT_SEED_RANDOM).
runtime::SamplingOptions sampling_options(const moat_sampling_options& options);
// A sampler for `options`; UserError naming a value out of range.
runtime::Sampler make_sampler(const moat_sampling_options& options);

}  // namespace moat::capi
