// The OpenAI protocol of `moat serve`: request bodies of /v1/chat/completions and
// /v1/completions read into one request type, the JSON of responses and of streamed
// chunks (server-sent events), and OpenAI-style errors. No HTTP and no model here.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "frontend/tokenizer/chat_format.h"
#include "runtime/sampler.h"

namespace moat::cli {

// An error answered as {"error": {"message", "type", "param", "code"}} with `status`.
struct ApiError : std::runtime_error {
  ApiError(int status, std::string type, const std::string& message, std::string param = {})
      : std::runtime_error(message), status(status), type(std::move(type)), param(std::move(param)) {}
  int status;
  std::string type;   // "invalid_request_error", "authentication_error", "rate_limit_error", ...
  std::string param;  // the offending field, "" when none
};

nlohmann::json error_body(int status, const std::string& type, const std::string& message, const std::string& param = {});

enum class Endpoint { chat, completion };

struct ApiRequest {
  Endpoint endpoint = Endpoint::chat;
  std::vector<tok::ChatMessage> messages;  // chat
  std::string prompt;                      // completion: text ...
  std::vector<int32_t> prompt_ids;         // ... or token ids (when given as integers)
  bool prompt_is_ids = false;
  std::string model;
  bool stream = false;
  bool include_usage = false;            // stream_options.include_usage
  std::optional<int64_t> max_tokens;     // absent: until the context is full
  std::vector<std::string> stop;         // at most 4 strings, none empty
  bool ignore_eos = false;               // llama-server's extra: generate past end of sequence
  runtime::SamplingOptions sampling;     // OpenAI's defaults: temperature 1, top_p 1
};

// Reads a request body. ApiError 400 naming the field for anything malformed, out of
// range or unsupported (n > 1, logprobs, tools).
ApiRequest parse_request(Endpoint endpoint, const std::string& body, uint64_t default_seed);

// The text to send now and whether a stop string ended the text: text is held back
// while it could be the start of a stop string.
class StopMatcher {
 public:
  explicit StopMatcher(std::vector<std::string> stops) : stops_(std::move(stops)) {}
  // Adds generated text; returns what may be sent. After a match, `stopped()`.
  std::string push(const std::string& text);
  std::string flush();  // at the end: what is held
  bool stopped() const { return stopped_; }

 private:
  std::vector<std::string> stops_;
  std::string held_;
  bool stopped_ = false;
};

struct Usage {
  int64_t prompt_tokens = 0, completion_tokens = 0, cached_tokens = 0;
};

nlohmann::json usage_json(const Usage& usage);
// A whole response: chat.completion or text_completion.
nlohmann::json response_json(const ApiRequest& request, const std::string& id, int64_t created, const std::string& text,
                             const std::string& finish_reason, const Usage& usage);
// One streamed chunk (chat.completion.chunk or text_completion): `text` as the delta,
// and the finish reason on the last ("" before). The first chat chunk carries the role.
nlohmann::json chunk_json(const ApiRequest& request, const std::string& id, int64_t created, const std::string& text,
                          const std::string& finish_reason, bool first);

}  // namespace moat::cli
