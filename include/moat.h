/* moat.h: the C API of moatless, for programs in C and for other languages' foreign
 * function interfaces (python/moat is one). Link with -lmoat (libmoat.so).
 *
 * Conventions:
 *  - Every function but moat_version, moat_status_name, moat_last_error and the
 *    moat_*_free functions returns a moat_status. On anything but MOAT_OK,
 *    moat_last_error() holds a message for this thread that says what went wrong
 *    (and, for MOAT_ERROR_USER, what to do); outputs are then left unspecified.
 *  - Handles are opaque. A NULL handle, a NULL output pointer or an out-of-range
 *    value is MOAT_ERROR_INVALID_ARGUMENT, never a crash. Freeing NULL does nothing.
 *  - A handle is used by one thread at a time; different handles may be used from
 *    different threads at once. A session keeps its model alive: a model may be freed
 *    while sessions made from it are still in use.
 *  - Token ids are int32_t. Text is UTF-8 bytes given with their length (no NUL needed).
 *  - No C++ exception crosses this interface.
 */
#ifndef MOAT_H
#define MOAT_H

#include <stddef.h>
#include <stdint.h>

#if defined(MOAT_C_BUILDING) && defined(__GNUC__)
#define MOAT_API __attribute__((visibility("default")))
#else
#define MOAT_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* ---- status and errors ---- */

typedef enum moat_status {
  MOAT_OK = 0,
  MOAT_ERROR_INVALID_ARGUMENT = 1, /* a NULL handle or pointer, a value out of range: a bug of the caller */
  MOAT_ERROR_USER = 2,             /* a bad file, device or option: the message says what to do */
  MOAT_ERROR_INTERNAL = 3,         /* a bug of moatless: please report the message */
  MOAT_ERROR_OUT_OF_MEMORY = 4,    /* the host could not allocate */
  MOAT_ERROR_BUFFER_TOO_SMALL = 5  /* a caller's buffer is too small: the size out-parameter says how large */
} moat_status;

/* A short name of `status` ("MOAT_ERROR_USER"); "unknown status" for other values. */
MOAT_API const char* moat_status_name(moat_status status);

/* The message of the last failed call on this thread ("" when none failed). Valid
 * until the next failing call on this thread. */
MOAT_API const char* moat_last_error(void);

/* The library's version, "MAJOR.MINOR.PATCH". */
MOAT_API const char* moat_version(void);

/* ---- devices ---- */

/* How many devices this machine offers (at least 1: the CPU). Enumerated once per
 * process, on the first call of a moat_device_* function. */
MOAT_API moat_status moat_device_count(size_t* count);

/* Device `index` (< count): `*id` is what moat_session_create takes ("cpu",
 * "opencl:0", "cuda:0", "hip:0"), `*name` a human name ("AMD EPYC 7B13",
 * "NVIDIA H100"). Either output may be NULL. Strings live as long as the process. */
MOAT_API moat_status moat_device_info(size_t index, const char** id, const char** name);

/* ---- models ---- */

typedef struct moat_model moat_model;

/* The model in `path`: a GGUF file or a Hugging Face folder. Weights are mapped, not
 * read; nothing is put on a device until a session is made. The tokenizer is read too
 * when the file has one (moat_tokenize then works). MOAT_ERROR_USER naming the path
 * for a file that is missing, unreadable, not a model or of an unsupported family. */
MOAT_API moat_status moat_model_open(const char* path, moat_model** model);
MOAT_API void moat_model_free(moat_model* model);

/* Rows of the logits (tokens of the output layer). */
MOAT_API moat_status moat_model_vocab_size(const moat_model* model, int32_t* n_vocab);
/* The beginning- and end-of-sequence tokens; -1 when the model has none. eos is the
 * token moat_generate stops at. */
MOAT_API moat_status moat_model_bos(const moat_model* model, int32_t* bos);
MOAT_API moat_status moat_model_eos(const moat_model* model, int32_t* eos);
/* The context the model was trained for, in tokens. */
MOAT_API moat_status moat_model_training_context(const moat_model* model, int64_t* tokens);

/* The ids of `text` (`length` bytes of UTF-8; invalid bytes read as U+FFFD), with the
 * BOS token first when `add_bos` is nonzero and the model has one. Writes at most
 * `capacity` ids to `ids` and the number of ids of the text to `*n_ids`;
 * MOAT_ERROR_BUFFER_TOO_SMALL when that is more than `capacity` (call again with
 * `*n_ids` ids of room; `ids` may be NULL when `capacity` is 0). MOAT_ERROR_USER when
 * the model file has no tokenizer. */
MOAT_API moat_status moat_tokenize(const moat_model* model, const char* text, size_t length, int add_bos,
                                   int32_t* ids, size_t capacity, size_t* n_ids);

/* The UTF-8 text of `n_ids` ids (control tokens such as BOS written as their text when
 * `render_special` is nonzero, else left out). The caller's buffer: `*length` is set
 * to the text's length in bytes (no NUL counted); when `capacity` > `*length` the text
 * and a terminating NUL are written to `text`, else MOAT_ERROR_BUFFER_TOO_SMALL and
 * nothing is written (call again with `*length` + 1 bytes; `text` may be NULL when
 * `capacity` is 0). MOAT_ERROR_INVALID_ARGUMENT for an id outside the vocabulary. */
MOAT_API moat_status moat_detokenize(const moat_model* model, const int32_t* ids, size_t n_ids, int render_special,
                                     char* text, size_t capacity, size_t* length);

/* ---- sessions: a model on a device, with its cache ---- */

/* The element type of the session's cache (moat run --cache-type). */
typedef enum moat_cache_type {
  MOAT_CACHE_F16 = 0, /* the default */
  MOAT_CACHE_F32 = 1,
  MOAT_CACHE_BF16 = 2,
  MOAT_CACHE_Q8_0 = 3, /* rows of whole 32-element blocks (every real DeepSeek model) */
  /* Not a type: makes every int a value of this enum, so that a caller's bad value is
   * answered with an error (MOAT_ERROR_USER) rather than undefined behaviour. */
  MOAT_CACHE_TYPE_MAX_ENUM = 0x7fffffff
} moat_cache_type;

typedef struct moat_session moat_session;

/* The model on device `device_id` ("cpu", "opencl:0", ...; see moat_device_info) with
 * a cache for `context` tokens (0: the model's training context, capped to fit half
 * the host's memory). `cpu_threads`: worker threads of the "cpu" device (0: one per
 * physical core; ignored for other devices). Weights are uploaded here; kernels are
 * compiled on first use through the kernel cache ($MOAT_CACHE_DIR, else
 * ~/.cache/moatless/kernels). MOAT_ERROR_USER for an unknown device (the message lists
 * the available ones) or when the model, cache and activations pass the memory. */
MOAT_API moat_status moat_session_create(const moat_model* model, const char* device_id, int64_t context,
                                         moat_cache_type cache_type, int cpu_threads, moat_session** session);
MOAT_API void moat_session_free(moat_session* session);

/* Evaluates `n_tokens` (>= 1) tokens after those the session holds and writes the
 * logits of the last one to `logits`, which has room for `capacity` >= n_vocab floats.
 * MOAT_ERROR_USER, before any work, when the tokens would pass the context. */
MOAT_API moat_status moat_session_evaluate(moat_session* session, const int32_t* tokens, size_t n_tokens,
                                           float* logits, size_t capacity);

/* Forgets every token after the first `tokens` (>= 0); later tokens are evaluated after
 * those. Nothing happens when `tokens` >= the tokens held. A model whose cache is cut
 * back exactly only so far (DeepSeek-V4: 16 tokens past what passes wrote) empties it
 * for a longer cut: moat_session_cached_tokens then says what it kept. */
MOAT_API moat_status moat_session_rewind(moat_session* session, int64_t tokens);

/* Tokens the session's cache holds, and the most it can hold. */
MOAT_API moat_status moat_session_cached_tokens(const moat_session* session, int64_t* tokens);
MOAT_API moat_status moat_session_context(const moat_session* session, int64_t* tokens);

/* The ids the session's cache holds, in order (as moat_tokenize: `*n_ids` is their
 * number; MOAT_ERROR_BUFFER_TOO_SMALL when that passes `capacity`). With a new prompt,
 * the length of their common prefix is what moat_session_rewind keeps (or nothing, see
 * there). */
MOAT_API moat_status moat_session_tokens(const moat_session* session, int32_t* ids, size_t capacity, size_t* n_ids);

/* ---- sampling ---- */

/* moat_sampling_options.seed: a new seed from the system's entropy for each sampler. */
#define MOAT_SEED_RANDOM UINT64_MAX

/* How the next token is chosen (runtime/sampler.h): the penalties over the last
 * `repeat_last_n` tokens, then top-k, top-p, min-p (on the untempered softmax), the
 * temperature, and a draw. The same seed and the same logits give the same tokens. */
typedef struct moat_sampling_options {
  double temperature;       /* 0: greedy (the most likely token, ties to the lower id) */
  int64_t top_k;            /* keep the k most likely; 0: all */
  double top_p;             /* keep the smallest set whose probability reaches p; 1: off */
  double min_p;             /* drop tokens below min_p x the best probability; 0: off */
  double repeat_penalty;    /* > 1 discourages recent tokens (logit / p when positive, x p when negative); 1: off */
  double frequency_penalty; /* logit -= f x (times the token is among the recent ones) */
  double presence_penalty;  /* logit -= p once when it is among them */
  int64_t repeat_last_n;    /* tokens the penalties look back over; 0: none; -1: the whole history */
  uint64_t seed;            /* MOAT_SEED_RANDOM: a new one */
} moat_sampling_options;

/* Fills `options` with llama.cpp's defaults, which are also `moat run`'s: temperature
 * 0.8, top-k 40, top-p 0.95, min-p 0.05, penalties off (1, 0, 0) over the last 64
 * tokens, seed MOAT_SEED_RANDOM. */
MOAT_API moat_status moat_sampling_options_default(moat_sampling_options* options);

typedef struct moat_sampler moat_sampler;

/* MOAT_ERROR_USER naming the option when a value is out of range. */
MOAT_API moat_status moat_sampler_create(const moat_sampling_options* options, moat_sampler** sampler);
MOAT_API void moat_sampler_free(moat_sampler* sampler);

/* The next token given `logits` [n_logits] (the row moat_session_evaluate wrote) and
 * the tokens so far (prompt included, for the penalties; `history` may be NULL when
 * `n_history` is 0). Advances the sampler's random state. */
MOAT_API moat_status moat_sampler_sample(moat_sampler* sampler, const float* logits, size_t n_logits,
                                         const int32_t* history, size_t n_history, int32_t* token);

/* ---- generation ---- */

/* Called with each generated token as soon as it is chosen: its id and its bytes
 * (`length` of them, not NUL-terminated; a token may hold part of a UTF-8 character,
 * which the next tokens complete: concatenated, the pieces are the text; none when
 * the model has no tokenizer). Return 0 to go on, nonzero to stop after this token. */
typedef int (*moat_token_callback)(int32_t token, const char* text, size_t length, void* user_data);

/* Why moat_generate stopped. */
typedef enum moat_stop_reason {
  MOAT_STOP_LIMIT = 0,        /* max_tokens generated */
  MOAT_STOP_EOS = 1,          /* the model's end of sequence was chosen (not passed to the callback) */
  MOAT_STOP_CONTEXT_FULL = 2, /* the session's context is full */
  MOAT_STOP_CALLBACK = 3      /* the callback returned nonzero */
} moat_stop_reason;

typedef struct moat_generation_result {
  int64_t generated_tokens;
  moat_stop_reason stop;
} moat_generation_result;

/* Evaluates `prompt` (`n_prompt` >= 1 ids) after what the session holds, then samples
 * with `sampling` (a sampler made for this call) at most `max_tokens` tokens, each
 * evaluated before the next is chosen, and passes each to `callback` (may be NULL).
 * `stop_at_eos` nonzero: stops when the model's end-of-sequence token is chosen. The
 * penalties look back over every token the session holds. `result` may be NULL. As
 * `moat run --tokens`: the same model, device, prompt and options give the same ids. */
MOAT_API moat_status moat_generate(moat_session* session, const int32_t* prompt, size_t n_prompt,
                                   const moat_sampling_options* sampling, int64_t max_tokens, int stop_at_eos,
                                   moat_token_callback callback, void* user_data, moat_generation_result* result);

#ifdef __cplusplus
}
#endif

#endif /* MOAT_H */
