// moat_session_*: a model on a device (runtime/session.h), and the tokens its cache holds.
#include <algorithm>

#include "backends/device.h"
#include "capi/boundary.h"
#include "capi/handles.h"
#include "ir/tensor.h"
#include "runtime/context.h"
#include "support/error.h"
#include "support/memory.h"

namespace moat::capi {

namespace {

ir::DType cache_dtype(moat_cache_type type) {
  switch (type) {
    case MOAT_CACHE_F16: return ir::DType::f16;
    case MOAT_CACHE_F32: return ir::DType::f32;
    case MOAT_CACHE_BF16: return ir::DType::bf16;
    case MOAT_CACHE_Q8_0: return ir::DType::q8_0;
    case MOAT_CACHE_TYPE_MAX_ENUM: break;  // not a type
  }
  user_error("cache type ", static_cast<int>(type), " is not a moat_cache_type: give MOAT_CACHE_F16 (the default), ",
             "MOAT_CACHE_F32, MOAT_CACHE_BF16 or MOAT_CACHE_Q8_0");
}

// The session as `moat run` makes it (samples/moat/run_setup.cpp): the context chosen
// by runtime::choose_context, the kernels cached by the model's kernel cache.
moat_session* create(const std::shared_ptr<ModelState>& model, const char* device_id, int64_t context,
                     moat_cache_type cache_type, int cpu_threads) {
  auto handle = std::make_unique<moat_session>();
  handle->model = model;
  runtime::SessionOptions options;
  options.cache_dtype = cache_dtype(cache_type);
  options.max_batch = handle->batch;
  const runtime::ContextChoice choice =
      runtime::choose_context(context, model->model->training_context(),
                              [&](int64_t tokens) { return models::cache_bytes(model->model->cache_layout(), options.cache_dtype, tokens); },
                              available_host_memory());
  options.context = choice.tokens;
  backends::CpuOptions cpu;
  cpu.threads = cpu_threads;
  handle->device = backends::open_device(device_id, cpu);  // UserError listing the devices there are
  handle->session = std::make_unique<runtime::Session>(*model->model, *handle->device, *model->kernels, options);
  return handle.release();
}

}  // namespace

}  // namespace moat::capi

using moat::capi::guarded;

extern "C" {

moat_status moat_session_create(const moat_model* model, const char* device_id, int64_t context,
                                moat_cache_type cache_type, int cpu_threads, moat_session** session) {
  return guarded(__func__, MOAT_CAPI_BODY {
    MOAT_CAPI_NOT_NULL(session);
    *session = nullptr;
    MOAT_CAPI_NOT_NULL(model);
    MOAT_CAPI_NOT_NULL(device_id);
    MOAT_CAPI_REQUIRE(context >= 0, "context is ", context, "; give a number of tokens, or 0 for the model's");
    MOAT_CAPI_REQUIRE(cpu_threads >= 0 && cpu_threads <= 1024, "cpu_threads is ", cpu_threads,
                      "; give 0 (one per physical core) to 1024");
    *session = moat::capi::create(model->state, device_id, context, cache_type, cpu_threads);
    return MOAT_OK;
  });
}

void moat_session_free(moat_session* session) { delete session; }

moat_status moat_session_evaluate(moat_session* session, const int32_t* tokens, size_t n_tokens, float* logits,
                                  size_t capacity) {
  return guarded(__func__, MOAT_CAPI_BODY {
    MOAT_CAPI_NOT_NULL(session);
    MOAT_CAPI_NOT_NULL(tokens);
    MOAT_CAPI_NOT_NULL(logits);
    MOAT_CAPI_REQUIRE(n_tokens >= 1, "n_tokens is 0; give at least one token");
    const int64_t vocab = session->model->model->vocab_size();
    MOAT_CAPI_REQUIRE(capacity >= static_cast<size_t>(vocab), "logits has room for ", capacity,
                      " floats; the model's logits are ", vocab);
    for (size_t i = 0; i < n_tokens; ++i)
      MOAT_CAPI_REQUIRE(tokens[i] >= 0 && tokens[i] < vocab, "tokens[", i, "] = ", tokens[i],
                        " is outside the vocabulary of ", vocab, " tokens");
    const std::span<const int32_t> span(tokens, n_tokens);
    std::vector<float> out;
    try {
      out = session->session->evaluate(span, session->batch, moat::models::LogitRows::last);
    } catch (...) {  // a pass that failed after others: the cache holds what the record says
      // (all of it, or nothing where the cut is too long: Model::cache_rewind_limit)
      session->tokens.resize(static_cast<size_t>(session->session->rewind(static_cast<int64_t>(session->tokens.size()))));
      throw;
    }
    MOAT_INTERNAL_CHECK(static_cast<int64_t>(out.size()) == vocab, "last-row logits of ", out.size(), " floats");
    session->tokens.insert(session->tokens.end(), span.begin(), span.end());
    std::copy(out.begin(), out.end(), logits);
    return MOAT_OK;
  });
}

moat_status moat_session_rewind(moat_session* session, int64_t tokens) {
  return guarded(__func__, MOAT_CAPI_BODY {
    MOAT_CAPI_NOT_NULL(session);
    MOAT_CAPI_REQUIRE(tokens >= 0, "tokens is ", tokens, "; give the number of tokens to keep (>= 0)");
    session->session->rewind(tokens);
    session->tokens.resize(static_cast<size_t>(session->session->cached_tokens()));
    return MOAT_OK;
  });
}

moat_status moat_session_cached_tokens(const moat_session* session, int64_t* tokens) {
  return guarded(__func__, MOAT_CAPI_BODY {
    MOAT_CAPI_NOT_NULL(session);
    MOAT_CAPI_NOT_NULL(tokens);
    *tokens = session->session->cached_tokens();
    return MOAT_OK;
  });
}

moat_status moat_session_context(const moat_session* session, int64_t* tokens) {
  return guarded(__func__, MOAT_CAPI_BODY {
    MOAT_CAPI_NOT_NULL(session);
    MOAT_CAPI_NOT_NULL(tokens);
    *tokens = session->session->context();
    return MOAT_OK;
  });
}

moat_status moat_session_tokens(const moat_session* session, int32_t* ids, size_t capacity, size_t* n_ids) {
  return guarded(__func__, MOAT_CAPI_BODY {
    MOAT_CAPI_NOT_NULL(session);
    MOAT_CAPI_NOT_NULL(n_ids);
    MOAT_CAPI_REQUIRE(ids != nullptr || capacity == 0, "ids is NULL but its capacity is ", capacity);
    const std::vector<int32_t>& held = session->tokens;
    *n_ids = held.size();
    if (held.size() > capacity)
      return moat::capi::fail(MOAT_ERROR_BUFFER_TOO_SMALL,
                              moat::cat(fn, ": the session holds ", held.size(), " tokens; ids has room for ", capacity));
    std::copy(held.begin(), held.end(), ids);
    return MOAT_OK;
  });
}

}  // extern "C"
