// moat_model_*: a model file opened (frontend/model.h), its tokenizer, and text <-> ids.
#include <algorithm>
#include <cstdlib>
#include <span>

#include "capi/boundary.h"
#include "capi/handles.h"
#include "frontend/model.h"
#include "support/error.h"

namespace moat::capi {

namespace {

std::shared_ptr<ModelState> open_state(const std::string& path) {
  auto state = std::make_shared<ModelState>();
  state->path = path;
  state->model = models::open_model(path);  // UserError naming the path
  try {
    state->tokenizer = tok::Tokenizer::open(path);
  } catch (const UserError& e) {
    state->no_tokenizer_reason = e.what();
  }
  // The end of sequence as `moat run` stops at it (samples/moat/run_setup.cpp): the
  // model file's, then the tokenizer's when it differs.
  const int32_t model_eos = state->model->eos_token();
  if (model_eos >= 0) state->stop_ids.push_back(model_eos);
  if (state->tokenizer) {
    const int32_t tok_eos = state->tokenizer->eos();
    if (tok_eos >= 0 && tok_eos != model_eos) state->stop_ids.push_back(tok_eos);
    state->bos = state->tokenizer->bos();
    if (state->tokenizer->vocab_size() > static_cast<size_t>(state->model->vocab_size()))
      user_error(path, ": the tokenizer has ", state->tokenizer->vocab_size(), " tokens but the model only ",
                 state->model->vocab_size(), "; the file is inconsistent");
  }
  state->eos = state->stop_ids.empty() ? -1 : state->stop_ids.front();
  state->kernels = std::make_unique<runtime::KernelCache>(runtime::default_kernel_cache_dir(
      std::getenv("MOAT_CACHE_DIR"), std::getenv("XDG_CACHE_HOME"), std::getenv("HOME")));
  return state;
}

const tok::Tokenizer& tokenizer_of(const ModelState& state) {
  if (!state.tokenizer)
    user_error("text needs the model's tokenizer, which ", state.path, " lacks (", state.no_tokenizer_reason,
               "); give token ids to moat_session_evaluate / moat_generate instead");
  return *state.tokenizer;
}

}  // namespace

}  // namespace moat::capi

using moat::capi::guarded;

extern "C" {

moat_status moat_model_open(const char* path, moat_model** model) {
  return guarded(__func__, MOAT_CAPI_BODY {
    MOAT_CAPI_NOT_NULL(model);
    *model = nullptr;
    MOAT_CAPI_NOT_NULL(path);
    MOAT_CAPI_REQUIRE(*path != '\0', "path is empty: give a GGUF file or a Hugging Face folder");
    auto state = moat::capi::open_state(path);
    *model = new moat_model{std::move(state)};
    return MOAT_OK;
  });
}

void moat_model_free(moat_model* model) { delete model; }

moat_status moat_model_vocab_size(const moat_model* model, int32_t* n_vocab) {
  return guarded(__func__, MOAT_CAPI_BODY {
    MOAT_CAPI_NOT_NULL(model);
    MOAT_CAPI_NOT_NULL(n_vocab);
    *n_vocab = static_cast<int32_t>(model->state->model->vocab_size());
    return MOAT_OK;
  });
}

moat_status moat_model_bos(const moat_model* model, int32_t* bos) {
  return guarded(__func__, MOAT_CAPI_BODY {
    MOAT_CAPI_NOT_NULL(model);
    MOAT_CAPI_NOT_NULL(bos);
    *bos = model->state->bos;
    return MOAT_OK;
  });
}

moat_status moat_model_eos(const moat_model* model, int32_t* eos) {
  return guarded(__func__, MOAT_CAPI_BODY {
    MOAT_CAPI_NOT_NULL(model);
    MOAT_CAPI_NOT_NULL(eos);
    *eos = model->state->eos;
    return MOAT_OK;
  });
}

moat_status moat_model_training_context(const moat_model* model, int64_t* tokens) {
  return guarded(__func__, MOAT_CAPI_BODY {
    MOAT_CAPI_NOT_NULL(model);
    MOAT_CAPI_NOT_NULL(tokens);
    *tokens = model->state->model->training_context();
    return MOAT_OK;
  });
}

moat_status moat_tokenize(const moat_model* model, const char* text, size_t length, int add_bos, int32_t* ids,
                          size_t capacity, size_t* n_ids) {
  return guarded(__func__, MOAT_CAPI_BODY {
    MOAT_CAPI_NOT_NULL(model);
    MOAT_CAPI_NOT_NULL(n_ids);
    MOAT_CAPI_REQUIRE(text != nullptr || length == 0, "text is NULL but its length is ", length);
    MOAT_CAPI_REQUIRE(ids != nullptr || capacity == 0, "ids is NULL but its capacity is ", capacity);
    const std::vector<int32_t> out =
        moat::capi::tokenizer_of(*model->state).encode(std::string_view(text ? text : "", length), add_bos != 0);
    *n_ids = out.size();
    if (out.size() > capacity)
      return moat::capi::fail(MOAT_ERROR_BUFFER_TOO_SMALL,
                              moat::cat(fn, ": the text is ", out.size(), " tokens; ids has room for ", capacity));
    std::copy(out.begin(), out.end(), ids);
    return MOAT_OK;
  });
}

moat_status moat_detokenize(const moat_model* model, const int32_t* ids, size_t n_ids, int render_special, char* text,
                            size_t capacity, size_t* length) {
  return guarded(__func__, MOAT_CAPI_BODY {
    MOAT_CAPI_NOT_NULL(model);
    MOAT_CAPI_NOT_NULL(length);
    MOAT_CAPI_REQUIRE(ids != nullptr || n_ids == 0, "ids is NULL but n_ids is ", n_ids);
    MOAT_CAPI_REQUIRE(text != nullptr || capacity == 0, "text is NULL but its capacity is ", capacity);
    const moat::tok::Tokenizer& tokenizer = moat::capi::tokenizer_of(*model->state);
    for (size_t i = 0; i < n_ids; ++i)
      MOAT_CAPI_REQUIRE(ids[i] >= 0 && static_cast<size_t>(ids[i]) < tokenizer.vocab_size(), "ids[", i, "] = ", ids[i],
                        " is outside the vocabulary of ", tokenizer.vocab_size(), " tokens");
    const std::string out = tokenizer.decode(std::span<const int32_t>(ids, n_ids), render_special != 0);
    *length = out.size();
    if (out.size() >= capacity)
      return moat::capi::fail(MOAT_ERROR_BUFFER_TOO_SMALL, moat::cat(fn, ": the text is ", out.size(),
                                                                     " bytes and its NUL; text has room for ", capacity));
    std::copy(out.begin(), out.end(), text);
    text[out.size()] = '\0';
    return MOAT_OK;
  });
}

}  // extern "C"
