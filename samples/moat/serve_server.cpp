#include "samples/moat/serve_server.h"

#include <httplib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <iostream>
#include <mutex>
#include <random>
#include <sstream>
#include <thread>

#include "samples/moat/client_socket.h"
#include "samples/moat/serve_api.h"
#include "support/error.h"

namespace moat::cli {

using nlohmann::json;

namespace {

// What the scheduler's thread hands to the HTTP thread of one request.
struct Exchange {
  explicit Exchange(const tok::Tokenizer& tokenizer, std::vector<std::string> stops)
      : decoder(tokenizer), stop(std::move(stops)) {}
  std::mutex mutex;
  std::condition_variable changed;
  std::string text;  // generated text not sent yet (streaming) or all of it
  bool done = false;
  runtime::BatchResult result;
  std::atomic<bool> client_gone{false};
  bool streaming = false;  // a whole response is woken once, at the end
  tok::StreamDecoder decoder;  // scheduler thread only
  StopMatcher stop;            // scheduler thread only
};

std::string finish_reason(const Exchange& x) {
  switch (x.result.reason) {
    case runtime::FinishReason::stop: return "stop";
    case runtime::FinishReason::cancelled: return "stop";  // a stop string (a client gone hears nothing)
    case runtime::FinishReason::length:
    case runtime::FinishReason::context_full: return "length";
    case runtime::FinishReason::error: return "error";
  }
  return "stop";
}

// Generated text may hold bytes that are not UTF-8 (a model can emit any byte token):
// they are sent as U+FFFD.
std::string dump(const json& body) { return body.dump(-1, ' ', false, json::error_handler_t::replace); }

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump(body), "application/json");
}

void send_error(httplib::Response& res, const ApiError& e) {
  send_json(res, e.status, error_body(e.status, e.type, e.what(), e.param));
}

int64_t unix_time() { return static_cast<int64_t>(std::time(nullptr)); }

// httplib 0.11 listens with a backlog of 5 (CPPHTTPLIB_LISTEN_BACKLOG, compiled into
// Debian's library): a burst of clients overflows it and some connections fail. Linux
// takes a second listen() on a listening socket as a new backlog.
class HttpServer : public httplib::Server {
 public:
  void raise_backlog() { ::listen(svr_sock_, SOMAXCONN); }
};

}  // namespace

struct ServeServer::Impl {
  Impl(const tok::Tokenizer& tokenizer, runtime::Session& session, const ServeOptions& options)
      : tokenizer(tokenizer), session(session), options(options),
        scheduler(session, options.max_queue, session.max_batch(), options.draft_tokens) {}

  const tok::Tokenizer& tokenizer;
  runtime::Session& session;
  ServeOptions options;
  runtime::BatchScheduler scheduler;
  HttpServer http;
  std::atomic<bool> draining{false};
  std::atomic<int64_t> in_flight{0};  // completion requests not answered in full yet
  std::atomic<uint64_t> http_requests{0}, next_id{1};
  std::atomic<uint64_t> status_4xx{0}, status_5xx{0};
  // A request without a seed samples with one of its own: this process's random salt
  // mixed with its number (two servers, or two runs, differ).
  const uint64_t seed_salt = (static_cast<uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}();

  void routes();
  bool authorized(const httplib::Request& req, httplib::Response& res);
  std::vector<int32_t> prompt_ids(const ApiRequest& r) const;
  void complete(Endpoint endpoint, const httplib::Request& req, httplib::Response& res);
  void stream(const ApiRequest& r, std::shared_ptr<Exchange> x, const std::string& id, httplib::Response& res);
  std::string metrics_text() const;
};

ServeServer::ServeServer(const tok::Tokenizer& tokenizer, runtime::Session& session, const ServeOptions& options)
    : impl_(std::make_unique<Impl>(tokenizer, session, options)) {
  impl_->routes();
}

ServeServer::~ServeServer() = default;

int ServeServer::bind() {
  Impl& s = *impl_;
  const int port = s.options.port == 0 ? s.http.bind_to_any_port(s.options.host)
                                       : (s.http.bind_to_port(s.options.host, s.options.port) ? s.options.port : -1);
  if (port <= 0)
    user_error("cannot listen on ", s.options.host, ":", s.options.port,
               " (in use, or not an address of this machine); choose another --port or --host");
  s.http.raise_backlog();
  return port;
}

void ServeServer::listen() { impl_->http.listen_after_bind(); }

void ServeServer::drain_and_stop() {
  Impl& s = *impl_;
  s.draining = true;
  s.scheduler.drain();  // every queued and running request finishes
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (s.in_flight > 0 && std::chrono::steady_clock::now() < deadline)  // their last bytes reach the clients
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  s.http.stop();
}

bool ServeServer::Impl::authorized(const httplib::Request& req, httplib::Response& res) {
  if (options.api_key.empty() || req.get_header_value("Authorization") == "Bearer " + options.api_key) return true;
  send_json(res, 401,
            error_body(401, "authentication_error", "a valid API key is needed: send the header 'Authorization: Bearer KEY'"));
  return false;
}

void ServeServer::Impl::routes() {
  http.new_task_queue = [n = options.http_threads] { return new httplib::ThreadPool(static_cast<size_t>(n)); };
  // httplib's default also sets SO_REUSEPORT, with which a second server binds a port in
  // use and the two split its connections: SO_REUSEADDR alone (restarts bind at once).
  // TCP_NODELAY (accepted connections inherit it): a response's headers and body go out
  // at once, not the body after the client's delayed ACK of the headers (40 ms on Linux,
  // which made one request in three of a kept-alive connection take 40 ms longer).
  http.set_socket_options([](socket_t sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
    ::setsockopt(sock, IPPROTO_TCP, TCP_NODELAY, &yes, sizeof yes);
  });
  http.set_tcp_nodelay(true);
  http.set_payload_max_length(options.max_body);
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    ++http_requests;
    const bool open = req.path == "/health";
    return open || authorized(req, res) ? httplib::Server::HandlerResponse::Unhandled : httplib::Server::HandlerResponse::Handled;
  });
  http.set_post_routing_handler([this](const httplib::Request&, httplib::Response& res) {
    if (res.status >= 500) ++status_5xx;
    else if (res.status >= 400) ++status_4xx;
  });
  // Errors httplib answers itself (404 for an unknown path, 413 for a body over the
  // limit, 400 for a malformed request line) get OpenAI's JSON body too.
  http.set_error_handler([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;
    const std::string message = res.status == 404 ? "no route " + req.method + " " + req.path + " (see /v1/models, /v1/chat/completions, /v1/completions, /health, /metrics)"
                                : res.status == 413 ? "the request body is larger than the server takes (--max-body)"
                                                    : "the request could not be read";
    send_json(res, res.status, error_body(res.status, res.status == 404 ? "not_found_error" : "invalid_request_error", message));
  });
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
    std::string what = "internal error";
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      what = e.what();
    } catch (...) {
    }
    send_json(res, 500, error_body(500, "server_error", what));
  });

  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (draining) return send_json(res, 503, {{"status", "draining"}});
    send_json(res, 200, {{"status", "ok"}});
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(metrics_text(), "text/plain; version=0.0.4");
  });
  http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    json model = {{"id", options.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "moatless"},
                  {"context_length", session.context()}};
    send_json(res, 200, {{"object", "list"}, {"data", json::array({model})}});
  });
  http.Post("/v1/chat/completions",
            [this](const httplib::Request& req, httplib::Response& res) { complete(Endpoint::chat, req, res); });
  http.Post("/v1/completions",
            [this](const httplib::Request& req, httplib::Response& res) { complete(Endpoint::completion, req, res); });
}

std::vector<int32_t> ServeServer::Impl::prompt_ids(const ApiRequest& r) const {
  if (r.endpoint == Endpoint::chat) {
    if (!options.chat_format)
      throw ApiError(400, "invalid_request_error",
                     "this model has no chat format moatless knows: start moat serve with --chat-template NAME, or use "
                     "/v1/completions",
                     "messages");
    const std::string bos = tokenizer.bos() >= 0 ? tokenizer.token_bytes(tokenizer.bos()) : "";
    const std::string eos = tokenizer.eos() >= 0 ? tokenizer.token_bytes(tokenizer.eos()) : "";
    return tokenizer.encode(tok::render_chat(*options.chat_format, r.messages, true, bos, eos), false);
  }
  if (!r.prompt_is_ids) return tokenizer.encode(r.prompt, tokenizer.add_bos());
  const auto vocab = static_cast<int32_t>(tokenizer.vocab_size());
  for (int32_t id : r.prompt_ids)
    if (id < 0 || id >= vocab)
      throw ApiError(400, "invalid_request_error",
                     "token id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(vocab) + " tokens",
                     "prompt");
  return r.prompt_ids;
}

void ServeServer::Impl::complete(Endpoint endpoint, const httplib::Request& req, httplib::Response& res) {
  if (draining) return send_error(res, ApiError(503, "server_error", "the server is shutting down; try another replica"));
  ApiRequest r;
  std::vector<int32_t> prompt;
  try {
    r = parse_request(endpoint, req.body, seed_salt ^ (next_id.load() * 0x9E3779B97F4A7C15ull));
    if (r.model.empty()) r.model = options.model_name;
    prompt = prompt_ids(r);
    const int64_t n = static_cast<int64_t>(prompt.size()), context = session.context();
    if (n == 0) throw ApiError(400, "invalid_request_error", "the prompt is empty", endpoint == Endpoint::chat ? "messages" : "prompt");
    if (n > context || (r.max_tokens && n + *r.max_tokens > context))
      throw ApiError(400, "invalid_request_error",
                     "this model's context is " + std::to_string(context) + " tokens; the prompt has " + std::to_string(n) +
                         (r.max_tokens ? " and max_tokens asks for " + std::to_string(*r.max_tokens) + " more" : std::string()) +
                         ": shorten the prompt or lower max_tokens",
                     r.max_tokens && n <= context ? "max_tokens" : endpoint == Endpoint::chat ? "messages" : "prompt");
  } catch (const ApiError& e) {
    return send_error(res, e);
  } catch (const UserError& e) {
    return send_error(res, ApiError(400, "invalid_request_error", e.what()));
  }

  auto x = std::make_shared<Exchange>(tokenizer, r.stop);
  x->streaming = r.stream;
  auto request = std::make_shared<runtime::BatchRequest>();
  request->prompt = prompt;
  request->sampling = r.sampling;
  request->max_tokens = r.max_tokens.value_or(session.context() - static_cast<int64_t>(prompt.size()));
  if (!r.ignore_eos) request->stop_ids = options.stop_ids;
  request->on_token = [x](int32_t id) {
    if (x->client_gone) return false;
    std::string piece = x->stop.push(x->decoder.push(id));
    {
      std::lock_guard lock(x->mutex);
      x->text += piece;
    }
    if (x->streaming && !piece.empty()) x->changed.notify_all();
    return !x->stop.stopped();
  };
  request->on_done = [x](const runtime::BatchResult& result) {
    std::string tail = x->stop.stopped() ? "" : x->stop.push(x->decoder.flush());
    tail += x->stop.flush();
    {
      std::lock_guard lock(x->mutex);
      x->text += tail;
      x->result = result;
      x->done = true;
    }
    x->changed.notify_all();
  };
  ++in_flight;
  switch (scheduler.submit(request)) {
    case runtime::SubmitResult::queued: break;
    case runtime::SubmitResult::queue_full:
      --in_flight;
      res.set_header("Retry-After", "1");
      return send_error(res, ApiError(429, "rate_limit_error",
                                      "the server's queue is full (" + std::to_string(options.max_queue) +
                                          " requests waiting); retry later"));
    case runtime::SubmitResult::draining:
      --in_flight;
      return send_error(res, ApiError(503, "server_error", "the server is shutting down; try another replica"));
  }
  const std::string id = (endpoint == Endpoint::chat ? "chatcmpl-" : "cmpl-") + std::to_string(next_id++);
  if (r.stream) return stream(r, x, id, res);

  // A client that hangs up stops its request at the next token, as a stream's does.
  const int client = find_client_socket(req.remote_addr, req.remote_port, req.local_port);
  std::unique_lock lock(x->mutex);
  while (!x->changed.wait_for(lock, std::chrono::milliseconds(100), [&] { return x->done; }))
    if (client >= 0 && !x->client_gone && client_hung_up(client)) x->client_gone = true;
  --in_flight;
  if (x->result.reason == runtime::FinishReason::error)
    return send_error(res, ApiError(500, "server_error", x->result.error));
  const Usage usage{x->result.prompt_tokens, x->result.generated_tokens, x->result.cached_prompt_tokens};
  send_json(res, 200, response_json(r, id, unix_time(), x->text, finish_reason(*x), usage));
}

// Server-sent events: one chunk per piece of text as it is generated, a last chunk with
// the finish reason, the usage when asked (stream_options.include_usage), then [DONE].
// A client that goes away ends its request at the next token.
void ServeServer::Impl::stream(const ApiRequest& r, std::shared_ptr<Exchange> x, const std::string& id,
                               httplib::Response& res) {
  const int64_t created = unix_time();
  auto first = std::make_shared<bool>(true);
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, r, x, id, created, first](size_t, httplib::DataSink& sink) {
        auto event = [&](const json& body) {
          const std::string line = "data: " + dump(body) + "\n\n";
          return sink.write(line.data(), line.size());
        };
        std::unique_lock lock(x->mutex);
        while (!x->done || !x->text.empty()) {
          x->changed.wait_for(lock, std::chrono::milliseconds(200), [&] { return x->done || !x->text.empty(); });
          if (!sink.is_writable()) {
            x->client_gone = true;
            return false;
          }
          if (x->text.empty() && !x->done) continue;
          std::string piece = std::move(x->text);
          x->text.clear();
          const bool done = x->done;
          lock.unlock();
          if (!piece.empty() && !event(chunk_json(r, id, created, piece, "", *first))) {
            x->client_gone = true;
            return false;
          }
          if (!piece.empty()) *first = false;
          lock.lock();
          if (done && x->text.empty()) break;
        }
        const runtime::BatchResult result = x->result;
        const std::string reason = finish_reason(*x);
        lock.unlock();
        if (result.reason == runtime::FinishReason::error) {
          event(error_body(500, "server_error", result.error));
        } else {
          event(chunk_json(r, id, created, "", reason, *first));
          if (r.include_usage) {
            json usage = chunk_json(r, id, created, "", "", false);
            usage["choices"] = json::array();
            usage["usage"] = usage_json({result.prompt_tokens, result.generated_tokens, result.cached_prompt_tokens});
            event(usage);
          }
        }
        const std::string end = "data: [DONE]\n\n";
        sink.write(end.data(), end.size());
        sink.done();
        return true;
      },
      [this, x](bool) {
        x->client_gone = true;  // if the stream ended early, the request stops at its next token
        --in_flight;
      });
}

std::string ServeServer::Impl::metrics_text() const {
  const runtime::BatchMetrics m = scheduler.metrics();
  std::ostringstream out;
  auto metric = [&](const char* name, const char* type, const char* help, double value) {
    out << "# HELP moat_" << name << " " << help << "\n# TYPE moat_" << name << " " << type << "\nmoat_" << name << " "
        << value << "\n";
  };
  metric("http_requests_total", "counter", "HTTP requests received", static_cast<double>(http_requests.load()));
  metric("http_client_errors_total", "counter", "responses with a 4xx status", static_cast<double>(status_4xx.load()));
  metric("http_server_errors_total", "counter", "responses with a 5xx status", static_cast<double>(status_5xx.load()));
  metric("requests_total", "counter", "completion requests finished", static_cast<double>(m.requests_total));
  metric("requests_running", "gauge", "completion requests holding a sequence", static_cast<double>(m.running));
  metric("requests_queued", "gauge", "completion requests waiting for a sequence", static_cast<double>(m.queued));
  metric("prompt_tokens_total", "counter", "prompt tokens of finished requests", static_cast<double>(m.prompt_tokens_total));
  metric("prompt_tokens_cached_total", "counter", "prompt tokens whose cache rows were reused",
         static_cast<double>(m.cached_prompt_tokens_total));
  metric("generated_tokens_total", "counter", "tokens generated", static_cast<double>(m.generated_tokens_total));
  metric("busy_seconds_total", "counter", "seconds spent evaluating passes", m.busy_seconds);
  metric("generated_tokens_per_second", "gauge", "tokens generated per busy second",
         m.busy_seconds > 0 ? static_cast<double>(m.generated_tokens_total) / m.busy_seconds : 0.0);
  metric("passes_total", "counter", "forward passes run (prompt chunks and decode steps)", static_cast<double>(m.passes));
  metric("decode_passes_total", "counter", "passes that decoded tokens (beside prompt tokens or not)",
         static_cast<double>(m.decode_passes));
  metric("decode_batch_mean", "gauge", "sequences per decode pass, on average",
         m.decode_passes > 0 ? static_cast<double>(m.decode_tokens) / static_cast<double>(m.decode_passes) : 0.0);
  metric("drafted_tokens_total", "counter", "tokens drafted by the MTP layer (--spec mtp)", static_cast<double>(m.drafted_tokens_total));
  metric("accepted_drafts_total", "counter", "drafted tokens the model accepted", static_cast<double>(m.accepted_drafts_total));
  metric("plans_compiled_total", "counter",
         "pass shapes compiled (the warm-up's included; a rise while serving: a pass waited for its compilation)",
         static_cast<double>(m.plans_compiled));
  metric("sequences", "gauge", "sequences decoded together at most (--parallel)", static_cast<double>(m.sequences));
  metric("cache_tokens_used", "gauge", "cache rows holding tokens", static_cast<double>(m.cache_tokens_used));
  metric("cache_tokens_capacity", "gauge", "cache rows of every sequence", static_cast<double>(m.cache_tokens_capacity));
  return out.str();
}

}  // namespace moat::cli
