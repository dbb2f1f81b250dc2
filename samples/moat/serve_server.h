// `moat serve`'s HTTP side: the OpenAI-compatible routes over cpp-httplib (Debian's
// libcpp-httplib-dev), requests turned into token ids (the model's chat format for
// chats) and handed to the batch scheduler, replies streamed as server-sent events or
// sent whole, limits and errors answered as OpenAI does, and a drain for SIGTERM.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "frontend/tokenizer/chat_format.h"
#include "frontend/tokenizer/tokenizer.h"
#include "runtime/batch_scheduler.h"

namespace moat::cli {

struct ServeOptions {
  std::string host = "127.0.0.1";
  int port = 8080;           // 0: any free port (the one chosen is printed)
  std::string api_key;       // "": no key needed
  std::string model_name;    // what /v1/models lists and responses echo
  int64_t max_queue = 64;    // requests waiting for a sequence; more get 429
  size_t max_body = 1 << 20; // bytes of a request body; more get 413
  int http_threads = 64;     // connections served at once (streams hold one each)
  std::optional<tok::ChatFormat> chat_format;  // none: /v1/chat/completions answers 400
  std::vector<int32_t> stop_ids;               // the model's end of sequence
  int64_t draft_tokens = 0;  // > 0: speculative decoding (--spec mtp; a drafting session of one sequence)
};

class ServeServer {
 public:
  ServeServer(const tok::Tokenizer& tokenizer, runtime::Session& session, const ServeOptions& options);
  ~ServeServer();

  // Binds host:port; UserError when it cannot. Returns the port bound.
  int bind();
  // Serves until stop(); returns after the listener closed.
  void listen();
  // SIGTERM: refuse new requests (503), finish those in flight, then close the listener.
  void drain_and_stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace moat::cli
