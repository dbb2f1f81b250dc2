#include "samples/moat/serve_api.h"

#include <algorithm>

namespace moat::cli {

using nlohmann::json;

namespace {

[[noreturn]] void bad(const std::string& param, const std::string& message) {
  throw ApiError(400, "invalid_request_error", message, param);
}

double number_in(const json& body, const char* field, double fallback, double lo, double hi) {
  if (!body.contains(field) || body[field].is_null()) return fallback;
  if (!body[field].is_number()) bad(field, std::string("'") + field + "' must be a number");
  const double v = body[field].get<double>();
  if (!(v >= lo && v <= hi))
    bad(field, std::string("'") + field + "' must be between " + json(lo).dump() + " and " + json(hi).dump() + ", got " +
                   json(v).dump());
  return v;
}

std::optional<int64_t> integer_in(const json& body, const char* field, int64_t lo, int64_t hi) {
  if (!body.contains(field) || body[field].is_null()) return std::nullopt;
  if (!body[field].is_number_integer()) bad(field, std::string("'") + field + "' must be an integer");
  const int64_t v = body[field].get<int64_t>();
  if (v < lo || v > hi)
    bad(field, std::string("'") + field + "' must be between " + std::to_string(lo) + " and " + std::to_string(hi) +
                   ", got " + std::to_string(v));
  return v;
}

bool flag_in(const json& body, const char* field) {
  if (!body.contains(field) || body[field].is_null()) return false;
  if (!body[field].is_boolean()) bad(field, std::string("'") + field + "' must be true or false");
  return body[field].get<bool>();
}

// A message's content: a string, or an array of {"type": "text", "text": ...} parts.
std::string content_text(const json& content, size_t index) {
  const std::string param = "messages[" + std::to_string(index) + "].content";
  if (content.is_string()) return content.get<std::string>();
  if (content.is_null()) return "";
  if (!content.is_array()) bad(param, "'" + param + "' must be a string or an array of text parts");
  std::string text;
  for (const json& part : content) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
      bad(param, "'" + param + "': only text parts ({\"type\": \"text\", \"text\": ...}) are supported");
    text += part["text"].get<std::string>();
  }
  return text;
}

void read_messages(const json& body, ApiRequest& r) {
  if (!body.contains("messages") || !body["messages"].is_array() || body["messages"].empty())
    bad("messages", "'messages' must be a non-empty array of {\"role\", \"content\"}");
  for (size_t i = 0; i < body["messages"].size(); ++i) {
    const json& m = body["messages"][i];
    const std::string param = "messages[" + std::to_string(i) + "]";
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) bad(param, "'" + param + "' needs a string 'role'");
    std::string role = m["role"].get<std::string>();
    if (role == "developer") role = "system";  // OpenAI's newer name for it
    if (role != "system" && role != "user" && role != "assistant")
      bad(param + ".role", "'" + param + ".role' must be system, user or assistant, got '" + role + "'");
    r.messages.push_back({role, content_text(m.contains("content") ? m["content"] : json(), i)});
  }
}

void read_prompt(const json& body, ApiRequest& r) {
  if (!body.contains("prompt")) bad("prompt", "'prompt' is required");
  json p = body["prompt"];
  if (p.is_array() && p.size() == 1 && (p[0].is_string() || p[0].is_array())) p = p[0];  // one prompt of a batch of one
  if (p.is_string()) {
    r.prompt = p.get<std::string>();
    return;
  }
  if (p.is_array() && !p.empty() && std::all_of(p.begin(), p.end(), [](const json& t) { return t.is_number_integer(); })) {
    r.prompt_is_ids = true;
    for (const json& t : p) r.prompt_ids.push_back(static_cast<int32_t>(std::clamp<int64_t>(t.get<int64_t>(), -1, INT32_MAX)));
    return;
  }
  bad("prompt", "'prompt' must be a string or an array of token ids (one prompt per request)");
}

void read_stop(const json& body, ApiRequest& r) {
  if (!body.contains("stop") || body["stop"].is_null()) return;
  const json& s = body["stop"];
  if (s.is_string()) {
    r.stop.push_back(s.get<std::string>());
  } else if (s.is_array() && s.size() <= 4 && std::all_of(s.begin(), s.end(), [](const json& x) { return x.is_string(); })) {
    for (const json& x : s) r.stop.push_back(x.get<std::string>());
  } else {
    bad("stop", "'stop' must be a string or an array of at most 4 strings");
  }
  if (std::any_of(r.stop.begin(), r.stop.end(), [](const std::string& x) { return x.empty(); }))
    bad("stop", "'stop' strings must not be empty");
}

}  // namespace

json error_body(int status, const std::string& type, const std::string& message, const std::string& param) {
  return {{"error", {{"message", message}, {"type", type}, {"param", param.empty() ? json() : json(param)}, {"code", status}}}};
}

ApiRequest parse_request(Endpoint endpoint, const std::string& body_text, uint64_t default_seed) {
  const json body = json::parse(body_text, nullptr, false);
  if (body.is_discarded()) bad("", "the request body is not valid JSON");
  if (!body.is_object()) bad("", "the request body must be a JSON object");
  ApiRequest r;
  r.endpoint = endpoint;
  if (endpoint == Endpoint::chat) read_messages(body, r);
  else read_prompt(body, r);
  if (body.contains("model") && body["model"].is_string()) r.model = body["model"].get<std::string>();
  r.stream = flag_in(body, "stream");
  if (body.contains("stream_options") && body["stream_options"].is_object())
    r.include_usage = flag_in(body["stream_options"], "include_usage");
  if (auto n = integer_in(body, "n", 1, 128); n && *n != 1) bad("n", "'n' must be 1: one choice per request");
  for (const char* unsupported : {"tools", "functions", "logit_bias"})
    if (body.contains(unsupported) && !body[unsupported].is_null() && !body[unsupported].empty())
      bad(unsupported, std::string("'") + unsupported + "' is not supported by moat serve");
  if (flag_in(body, "logprobs") || (body.contains("logprobs") && body["logprobs"].is_number()))
    bad("logprobs", "'logprobs' is not supported by moat serve");
  r.max_tokens = integer_in(body, endpoint == Endpoint::chat && body.contains("max_completion_tokens") ? "max_completion_tokens"
                                                                                                       : "max_tokens",
                            1, INT32_MAX);
  read_stop(body, r);
  r.ignore_eos = flag_in(body, "ignore_eos");
  runtime::SamplingOptions& s = r.sampling;
  s.temperature = number_in(body, "temperature", 1.0, 0.0, 2.0);
  s.top_p = number_in(body, "top_p", 1.0, 0.0, 1.0);
  if (s.top_p == 0.0) s.top_p = 1e-9;  // the single most likely token
  s.top_k = integer_in(body, "top_k", 0, INT32_MAX).value_or(0);        // llama-server's extras
  s.min_p = number_in(body, "min_p", 0.0, 0.0, 1.0);
  s.repeat_penalty = number_in(body, "repeat_penalty", 1.0, 0.0, 10.0);
  s.presence_penalty = number_in(body, "presence_penalty", 0.0, -2.0, 2.0);
  s.frequency_penalty = number_in(body, "frequency_penalty", 0.0, -2.0, 2.0);
  s.repeat_last_n = -1;  // OpenAI's penalties count the whole text so far
  const std::optional<int64_t> seed = integer_in(body, "seed", INT64_MIN, INT64_MAX);
  s.seed = seed ? static_cast<uint64_t>(*seed) : default_seed;
  return r;
}

std::string StopMatcher::push(const std::string& text) {
  if (stopped_) return "";
  held_ += text;
  size_t first = std::string::npos;
  for (const std::string& s : stops_) first = std::min(first, held_.find(s));
  if (first != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, first);
    held_.clear();
    return out;
  }
  // Hold back the longest tail that some stop string starts with.
  size_t keep = 0;
  for (const std::string& s : stops_)
    for (size_t n = std::min(s.size() - 1, held_.size()); n > keep; --n)
      if (held_.compare(held_.size() - n, n, s, 0, n) == 0) {
        keep = n;
        break;
      }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopMatcher::flush() {
  std::string out = stopped_ ? "" : held_;
  held_.clear();
  return out;
}

json usage_json(const Usage& u) {
  return {{"prompt_tokens", u.prompt_tokens},
          {"completion_tokens", u.completion_tokens},
          {"total_tokens", u.prompt_tokens + u.completion_tokens},
          {"prompt_tokens_details", {{"cached_tokens", u.cached_tokens}}}};
}

json response_json(const ApiRequest& r, const std::string& id, int64_t created, const std::string& text,
                   const std::string& finish_reason, const Usage& usage) {
  json choice = {{"index", 0}, {"finish_reason", finish_reason}, {"logprobs", nullptr}};
  if (r.endpoint == Endpoint::chat) choice["message"] = {{"role", "assistant"}, {"content", text}};
  else choice["text"] = text;
  return {{"id", id},
          {"object", r.endpoint == Endpoint::chat ? "chat.completion" : "text_completion"},
          {"created", created},
          {"model", r.model},
          {"choices", json::array({choice})},
          {"usage", usage_json(usage)}};
}

json chunk_json(const ApiRequest& r, const std::string& id, int64_t created, const std::string& text,
                const std::string& finish_reason, bool first) {
  json choice = {{"index", 0}, {"finish_reason", finish_reason.empty() ? json() : json(finish_reason)}, {"logprobs", nullptr}};
  if (r.endpoint == Endpoint::chat) {
    json delta = json::object();
    if (first) delta["role"] = "assistant";
    if (!text.empty() || finish_reason.empty()) delta["content"] = text;
    choice["delta"] = delta;
  } else {
    choice["text"] = text;
  }
  return {{"id", id},
          {"object", r.endpoint == Endpoint::chat ? "chat.completion.chunk" : "text_completion"},
          {"created", created},
          {"model", r.model},
          {"choices", json::array({choice})}};
}

}  // namespace moat::cli
