// moat serve as a client sees it: the server started on a free loopback port with the
// demo model, driven with cpp-httplib's client. Every route, streaming, OpenAI-style
// errors, continuous batching (the same greedy text alone and batched, 32 concurrent
// streams), a client that goes away, and SIGTERM draining.
#include <httplib.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <thread>

#include "tests/cli/cli_runner.h"

namespace moat {

namespace {

using nlohmann::json;
using testing::CliProcess;

// A running `moat serve`; stopped (SIGTERM) and reaped when it goes out of scope. It
// listens at once (--no-warmup) unless `warm_up`: it then compiles its passes first.
struct Server {
  explicit Server(std::vector<std::string> args, bool warm_up = false) {
    std::vector<std::string> all{"serve", "--port", "0", "-t", "2"};
    if (std::find(args.begin(), args.end(), "--ctx") == args.end()) all.insert(all.end(), {"--ctx", "256"});
    if (!warm_up) all.push_back("--no-warmup");
    all.insert(all.end(), args.begin(), args.end());
    process = testing::start_moat(all);
    const bool up = testing::wait_for_output(
        process, [](const std::string& out) { return testing::contains(out, "listening on"); }, std::chrono::seconds(300));
    INFO(process.err());
    REQUIRE(up);
    std::smatch m;
    const std::string out = process.out();
    REQUIRE(std::regex_search(out, m, std::regex(R"(127\.0\.0\.1:(\d+))")));
    port = std::stoi(m[1]);
  }
  ~Server() {
    if (!reaped) {
      ::kill(process.pid, SIGTERM);
      testing::wait_moat(process);
    }
  }
  testing::CliResult stop() {
    process.signal(SIGTERM);
    reaped = true;
    return testing::wait_moat(process);
  }
  httplib::Client client(const std::string& key = "") const {
    httplib::Client c("127.0.0.1", port);
    c.set_read_timeout(120, 0);
    if (!key.empty()) c.set_bearer_token_auth(key.c_str());
    return c;
  }
  CliProcess process;
  int port = 0;
  bool reaped = false;
};

// The value of the Prometheus metric `name` (moat_...) in the server's /metrics.
double metric(const Server& s, const std::string& name) {
  httplib::Result r = s.client().Get("/metrics");
  REQUIRE(r);
  std::smatch m;
  REQUIRE(std::regex_search(r->body, m, std::regex("\n" + name + " ([0-9.e+]+)")));
  return std::stod(m[1]);
}

json post(const Server& s, const std::string& path, const json& body, int* status = nullptr, const std::string& key = "") {
  httplib::Result r = s.client(key).Post(path.c_str(), body.dump(), "application/json");
  REQUIRE(r);
  if (status) *status = r->status;
  return json::parse(r->body);
}

// The events of a streamed response: each "data: " payload, "[DONE]" last.
std::vector<std::string> events(const std::string& sse) {
  std::vector<std::string> out;
  size_t at = 0;
  while ((at = sse.find("data: ", at)) != std::string::npos) {
    const size_t end = sse.find("\n\n", at);
    out.push_back(sse.substr(at + 6, end - at - 6));
    at = end;
  }
  return out;
}

// The text of a streamed chat or completion, and its finish reason.
std::pair<std::string, std::string> streamed_text(const std::string& sse) {
  std::string text, reason;
  for (const std::string& e : events(sse)) {
    if (e == "[DONE]") continue;
    const json chunk = json::parse(e);
    if (chunk["choices"].empty()) continue;
    const json& c = chunk["choices"][0];
    if (c.contains("delta") && c["delta"].contains("content")) text += c["delta"]["content"].get<std::string>();
    if (c.contains("text")) text += c["text"].get<std::string>();
    if (!c["finish_reason"].is_null()) reason = c["finish_reason"].get<std::string>();
  }
  return {text, reason};
}

std::string stream(const Server& s, const std::string& path, json body) {
  body["stream"] = true;
  httplib::Result r = s.client().Post(path.c_str(), body.dump(), "application/json");
  if (!r) {  // (a REQUIRE would end the process from a client thread)
    FAIL_CHECK("no response: " << httplib::to_string(r.error()) << "; the server said: " << s.process.err());
    return "";
  }
  CHECK(r->status == 200);
  CHECK(r->get_header_value("Content-Type") == "text/event-stream");
  return r->body;
}

const json kChat = {{"messages", {{{"role", "system"}, {"content", "Answer as the King James Bible."}},
                                  {{"role", "user"}, {"content", "Who made the heaven and the earth?"}}}},
                    {"max_tokens", 24},
                    {"temperature", 0}};

}  // namespace

TEST_CASE("moat serve answers every route, streamed and whole, with the same greedy text") {
  Server s({"--parallel", "2"});
  httplib::Client c = s.client();
  httplib::Result health = c.Get("/health");
  REQUIRE(health);
  CHECK(health->status == 200);
  CHECK(json::parse(health->body)["status"] == "ok");
  httplib::Result models = c.Get("/v1/models");
  REQUIRE(models);
  CHECK(json::parse(models->body)["data"][0]["id"] == "kjv-tiny.gguf");

  int status = 0;
  const json whole = post(s, "/v1/chat/completions", kChat, &status);
  CHECK(status == 200);
  CHECK(whole["object"] == "chat.completion");
  const std::string text = whole["choices"][0]["message"]["content"];
  CHECK(!text.empty());
  CHECK(whole["choices"][0]["finish_reason"] == "length");
  CHECK(whole["usage"]["completion_tokens"] == 24);
  CHECK(whole["usage"]["prompt_tokens"].get<int>() > 10);

  json asked = kChat;
  asked["stream_options"] = {{"include_usage", true}};
  const std::string sse = stream(s, "/v1/chat/completions", asked);
  CHECK(events(sse).back() == "[DONE]");
  CHECK(streamed_text(sse) == std::pair{text, std::string("length")});
  const json usage = json::parse(events(sse)[events(sse).size() - 2]);
  CHECK(usage["usage"]["completion_tokens"] == 24);
  // The conversation's rows were kept: the same prompt again reuses all but its last token.
  CHECK(usage["usage"]["prompt_tokens_details"]["cached_tokens"].get<int>() == usage["usage"]["prompt_tokens"].get<int>() - 1);

  const json completion = post(s, "/v1/completions", {{"prompt", "In the beginning"}, {"max_tokens", 12}, {"temperature", 0}}, &status);
  CHECK(status == 200);
  CHECK(completion["object"] == "text_completion");
  const std::string completion_text = completion["choices"][0]["text"];
  const std::string completion_sse =
      stream(s, "/v1/completions", {{"prompt", "In the beginning"}, {"max_tokens", 12}, {"temperature", 0}});
  CHECK(streamed_text(completion_sse).first == completion_text);

  // A stop string ends the text before it; a seed repeats a sampled text.
  const size_t cut = completion_text.find(' ', 3);
  REQUIRE(cut != std::string::npos);
  const json stopped = post(s, "/v1/completions",
                            {{"prompt", "In the beginning"}, {"max_tokens", 12}, {"temperature", 0}, {"stop", completion_text.substr(cut, 4)}});
  CHECK(stopped["choices"][0]["text"] == completion_text.substr(0, cut));
  CHECK(stopped["choices"][0]["finish_reason"] == "stop");
  const json sampled = {{"prompt", "And God said"}, {"max_tokens", 16}, {"temperature", 0.9}, {"seed", 1234}};
  CHECK(post(s, "/v1/completions", sampled)["choices"][0]["text"] == post(s, "/v1/completions", sampled)["choices"][0]["text"]);

  httplib::Result metrics = c.Get("/metrics");
  REQUIRE(metrics);
  CHECK(testing::contains(metrics->body, "# TYPE moat_requests_total counter"));
  CHECK(testing::contains(metrics->body, "moat_requests_total 7"));
  CHECK(testing::contains(metrics->body, "moat_requests_queued 0"));
  CHECK(testing::contains(metrics->body, "moat_generated_tokens_per_second"));
  CHECK(testing::contains(metrics->body, "moat_cache_tokens_capacity 512"));
}

TEST_CASE("moat serve answers bad requests with OpenAI's errors and the right status") {
  Server s({"--parallel", "1", "--max-queue", "1", "--api-key", "sesame", "--max-body", "4096"});
  int status = 0;
  json e = post(s, "/v1/completions", {{"prompt", "x"}}, &status);
  CHECK(status == 401);
  CHECK(e["error"]["type"] == "authentication_error");
  httplib::Client open = s.client();
  CHECK(open.Get("/health")->status == 200);  // open without the key
  CHECK(open.Get("/metrics")->status == 401);

  auto error_of = [&](const std::string& path, const std::string& body) {
    httplib::Result r = s.client("sesame").Post(path.c_str(), body, "application/json");
    REQUIRE(r);
    status = r->status;
    return json::parse(r->body)["error"];
  };
  CHECK(error_of("/v1/completions", "{\"prompt\": ")["message"] == "the request body is not valid JSON");
  CHECK(status == 400);
  CHECK(error_of("/v1/completions", R"({"prompt": "x", "temperature": 5})")["param"] == "temperature");
  CHECK(status == 400);
  CHECK(error_of("/v1/chat/completions", R"({"messages": [{"role": "robot", "content": "x"}]})")["param"] == "messages[0].role");
  CHECK(error_of("/v1/chat/completions", R"({"messages": []})")["param"] == "messages");
  CHECK(error_of("/v1/completions", R"({"prompt": "x", "n": 2})")["param"] == "n");
  CHECK(error_of("/v1/completions", R"({"prompt": [1, 99999999]})")["message"].get<std::string>().find("outside the vocabulary") !=
        std::string::npos);
  const json long_prompt = {{"prompt", std::vector<int>(300, 5)}};
  CHECK(testing::contains(error_of("/v1/completions", long_prompt.dump())["message"], "context is 256 tokens; the prompt has 300"));
  CHECK(status == 400);
  CHECK(error_of("/v1/completions", R"({"prompt": "x", "max_tokens": 400})")["param"] == "max_tokens");
  CHECK(error_of("/v1/completions", json({{"prompt", std::string(5000, 'a')}}).dump())["code"] == 413);
  CHECK(status == 413);
  CHECK(error_of("/v1/nothing", "{}")["type"] == "not_found_error");
  CHECK(status == 404);

  // One sequence and a queue of one: of six requests at once, one or two are served, the
  // rest get 429.
  std::vector<int> statuses(6);
  std::vector<std::thread> clients;
  for (size_t i = 0; i < statuses.size(); ++i)
    clients.emplace_back([&, i] {
      httplib::Result r = s.client("sesame").Post("/v1/completions", R"({"prompt": "And", "max_tokens": 200, "temperature": 0})",
                                                   "application/json");
      statuses[i] = r ? r->status : -1;
    });
  for (std::thread& t : clients) t.join();
  CHECK(std::count(statuses.begin(), statuses.end(), 200) >= 1);
  CHECK(std::count(statuses.begin(), statuses.end(), 429) >= 1);
  CHECK(std::count(statuses.begin(), statuses.end(), 200) + std::count(statuses.begin(), statuses.end(), 429) == 6);
}

TEST_CASE("continuous batching: a greedy request gives the same text alone or among seven others, and 32 streams all finish") {
  Server s({"--parallel", "8"}, true);
  // The warm-up compiled every pass these batches take: none compiles while serving.
  CHECK(testing::contains(s.process.err(), "moat: warm-up: "));
  // decode passes of 1..8 sequences, mixed passes of 4..256 tokens, a prompt's chunks of
  // 1..256 tokens first and of 2..128 later
  const double plans = metric(s, "moat_plans_compiled_total");
  CHECK(plans == 8 + 7 + 9 + 7);
  auto request = [](int i) {
    return json{{"prompt", "And the LORD said unto " + std::to_string(i)}, {"max_tokens", 20}, {"temperature", 0}};
  };
  const std::string alone = post(s, "/v1/completions", request(3))["choices"][0]["text"];
  std::vector<std::string> texts(8);
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i)
    clients.emplace_back([&, i] { texts[static_cast<size_t>(i)] = post(s, "/v1/completions", request(i))["choices"][0]["text"]; });
  for (std::thread& t : clients) t.join();
  CHECK(texts[3] == alone);

  std::vector<std::pair<std::string, std::string>> chats(32);
  std::vector<size_t> event_counts(32);
  clients.clear();
  for (size_t i = 0; i < chats.size(); ++i)
    clients.emplace_back([&, i] {
      json chat = kChat;
      chat["messages"][1]["content"] = "Tell me of day " + std::to_string(i);
      chat["max_tokens"] = 16;
      const std::string sse = stream(s, "/v1/chat/completions", chat);
      chats[i] = streamed_text(sse);
      event_counts[i] = events(sse).size();
    });
  for (std::thread& t : clients) t.join();
  for (size_t i = 0; i < chats.size(); ++i) {
    INFO("stream " << i);
    CHECK(!chats[i].first.empty());
    CHECK(chats[i].second == "length");
    CHECK(event_counts[i] >= 3);
  }
  httplib::Result metrics = s.client().Get("/metrics");
  REQUIRE(metrics);
  CHECK(testing::contains(metrics->body, "moat_requests_total 41"));
  CHECK(testing::contains(metrics->body, "moat_generated_tokens_total " + std::to_string(20 + 8 * 20 + 32 * 16)));
  std::smatch m;
  REQUIRE(std::regex_search(metrics->body, m, std::regex(R"(moat_decode_batch_mean ([0-9.]+))")));
  CHECK(std::stod(m[1]) > 2.0);  // passes did carry several sequences
  CHECK(metric(s, "moat_plans_compiled_total") == plans);
}

TEST_CASE("more running requests than --batch tokens decode in several passes a step, each the text it gets alone") {
  Server s({"--parallel", "4", "--batch", "2"}, true);  // the warm-up's passes: of at most 2 tokens
  const double plans = metric(s, "moat_plans_compiled_total");
  auto request = [](int i) {
    return json{{"prompt", "In the beginning " + std::to_string(i)}, {"max_tokens", 12}, {"temperature", 0}};
  };
  std::vector<std::string> alone, together(4);
  for (int i = 0; i < 4; ++i) alone.push_back(post(s, "/v1/completions", request(i))["choices"][0]["text"]);
  std::vector<std::thread> clients;
  for (int i = 0; i < 4; ++i)
    clients.emplace_back([&, i] { together[static_cast<size_t>(i)] = post(s, "/v1/completions", request(i))["choices"][0]["text"]; });
  for (std::thread& t : clients) t.join();
  for (size_t i = 0; i < 4; ++i) {
    INFO("request " << i);
    CHECK(!alone[i].empty());
    CHECK(together[i] == alone[i]);
  }
  CHECK(metric(s, "moat_plans_compiled_total") == plans);
}

TEST_CASE("moat serve on opencl:0 (PoCL): the scheduler's thread drives the device, the CPU's greedy text") {
  const testing::CliResult devices = testing::run_moat({"devices"});
  if (!testing::contains(devices.out, "opencl:0")) {
    MESSAGE("skipped: no opencl:0 device here");
    return;
  }
  const json request = {{"prompt", "And God said"}, {"max_tokens", 16}, {"temperature", 0}};
  std::string cpu_text;
  {
    Server cpu({"--parallel", "2"});
    cpu_text = post(cpu, "/v1/completions", request)["choices"][0]["text"];
  }
  Server gpu({"--parallel", "2", "--device", "opencl:0"});
  int status = 0;
  const json got = post(gpu, "/v1/completions", request, &status);
  CHECK(status == 200);
  CHECK(got["choices"][0]["text"] == cpu_text);
}

TEST_CASE("moat serve --spec mtp: the MTP layer drafts, greedy text as without it, streamed and whole, drafts counted") {
  const json request = {{"prompt", "And the LORD spake unto Moses, saying,"}, {"max_tokens", 24}, {"temperature", 0}};
  std::string plain_text;
  {
    Server plain({"--parallel", "1"});
    plain_text = post(plain, "/v1/completions", request)["choices"][0]["text"];
  }
  Server s({"--spec", "mtp", "--draft", "2"});
  const json got = post(s, "/v1/completions", request);
  CHECK(got["choices"][0]["text"] == plain_text);
  CHECK(got["usage"]["completion_tokens"] == 24);
  json streamed_request = request;
  streamed_request["stream"] = true;
  const auto [text, reason] = streamed_text(stream(s, "/v1/completions", streamed_request));
  CHECK(text == plain_text);
  CHECK(reason == "length");
  // two requests at once take turns on the one sequence and both finish
  std::vector<std::string> texts(2);
  std::vector<std::thread> clients;
  for (size_t i = 0; i < 2; ++i)
    clients.emplace_back([&, i] { texts[i] = post(s, "/v1/completions", request)["choices"][0]["text"]; });
  for (std::thread& t : clients) t.join();
  CHECK(texts[0] == plain_text);
  CHECK(texts[1] == plain_text);
  httplib::Result metrics = s.client().Get("/metrics");
  REQUIRE(metrics);
  std::smatch drafted, accepted;
  REQUIRE(std::regex_search(metrics->body, drafted, std::regex(R"(moat_drafted_tokens_total ([0-9]+))")));
  REQUIRE(std::regex_search(metrics->body, accepted, std::regex(R"(moat_accepted_drafts_total ([0-9]+))")));
  CHECK(std::stoi(drafted[1]) > 0);
  CHECK(std::stoi(accepted[1]) > 0);
  const testing::CliResult several = testing::run_moat({"serve", "--spec", "mtp", "--parallel", "4", "--port", "0"});
  CHECK(several.exit_code == 2);
  CHECK(testing::contains(several.err, "--parallel 1"));
}

TEST_CASE("moat serve with DeepSeek-V4: a repeated greedy request gives the same text, alone or beside others, and a continued prompt reuses rows") {
  // Its ring and pooling state are cut back exactly by up to kRewindSlack (16) tokens:
  // a request that shares a prompt with one that generated 48 tokens reuses no rows (the
  // scheduler takes the length the session kept, 0); one that continues a short
  // conversation reuses its rows and gets the text a fresh sequence gets.
  const std::string v4 = std::string(MOAT_SOURCE_DIR) + "/tests/data/goldens/v4/model-f32.gguf";
  const json request = {{"prompt", "the quick brown"}, {"max_tokens", 48}, {"temperature", 0}};
  const json other = {{"prompt", "a b c d e f g"}, {"max_tokens", 64}, {"temperature", 0}};
  const json opening = {{"prompt", "the lazy dog"}, {"max_tokens", 6}, {"temperature", 0}};
  std::string other_alone;
  json first, follow_up, continued;
  {
    Server s({"-m", v4, "--parallel", "1"});
    first = post(s, "/v1/completions", request);
    const json again = post(s, "/v1/completions", request);
    CHECK(first["usage"]["completion_tokens"] == 48);
    CHECK(again["choices"][0]["text"] == first["choices"][0]["text"]);
    CHECK(again["usage"]["prompt_tokens_details"]["cached_tokens"] == 0);
    other_alone = post(s, "/v1/completions", other)["choices"][0]["text"];
    const json opened = post(s, "/v1/completions", opening);
    follow_up = {{"prompt", "the lazy dog" + opened["choices"][0]["text"].get<std::string>() + " and"},
                 {"max_tokens", 8}, {"temperature", 0}};
    continued = post(s, "/v1/completions", follow_up);
    CHECK(continued["usage"]["prompt_tokens_details"]["cached_tokens"] > 0);
  }
  // Several sequences: V4's decode steps are one pass of one token of each sequence, each
  // over its own cache rows; requests at once get the text each gets alone.
  Server s({"-m", v4, "--parallel", "3"});
  const json fresh = post(s, "/v1/completions", follow_up);
  CHECK(fresh["usage"]["prompt_tokens_details"]["cached_tokens"] == 0);
  CHECK(fresh["choices"][0]["text"] == continued["choices"][0]["text"]);
  std::vector<json> bodies = {request, other, request};
  std::vector<std::string> texts(bodies.size());
  std::vector<std::thread> clients;
  for (size_t i = 0; i < bodies.size(); ++i)
    clients.emplace_back([&, i] { texts[i] = post(s, "/v1/completions", bodies[i])["choices"][0]["text"]; });
  for (std::thread& t : clients) t.join();
  CHECK(texts[0] == first["choices"][0]["text"]);
  CHECK(texts[1] == other_alone);
  CHECK(texts[2] == first["choices"][0]["text"]);
  httplib::Result metrics = s.client().Get("/metrics");
  REQUIRE(metrics);
  std::smatch m;
  REQUIRE(std::regex_search(metrics->body, m, std::regex(R"(moat_decode_batch_mean ([0-9.]+))")));
  CHECK(std::stod(m[1]) > 1.0);  // steps did carry several sequences
}

TEST_CASE("a port in use, a bad device or option: exit 2 naming it") {
  Server s({"--parallel", "1"});
  const testing::CliResult taken = testing::run_moat({"serve", "--port", std::to_string(s.port), "--ctx", "64"});
  CHECK(taken.exit_code == 2);
  CHECK(testing::contains(taken.err, "cannot listen on 127.0.0.1:" + std::to_string(s.port)));
  const testing::CliResult parallel = testing::run_moat({"serve", "--parallel", "0"});
  CHECK(parallel.exit_code == 2);
  CHECK(testing::contains(parallel.err, "--parallel"));
  const testing::CliResult device = testing::run_moat({"serve", "--device", "nosuch:3", "--port", "0"});
  CHECK(device.exit_code == 2);
  CHECK(testing::contains(device.err, "nosuch:3"));
}

TEST_CASE("a streaming client that goes away frees its sequence") {
  Server s({"--parallel", "1"});
  httplib::Client c = s.client();
  int chunks = 0;
  const json body = {{"prompt", "And"}, {"max_tokens", 240}, {"temperature", 0}, {"stream", true}};
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.body = body.dump();
  req.set_header("Content-Type", "application/json");
  req.content_receiver = [&](const char*, size_t, uint64_t, uint64_t) { return ++chunks < 2; };  // hang up
  c.send(req);
  CHECK(chunks == 2);
  // The one sequence is free again soon, long before 240 tokens: a new request runs.
  const json next = post(s, "/v1/completions", {{"prompt", "And"}, {"max_tokens", 4}, {"temperature", 0}});
  CHECK(next["usage"]["completion_tokens"] == 4);
  httplib::Result metrics = c.Get("/metrics");
  REQUIRE(metrics);
  std::smatch m;
  REQUIRE(std::regex_search(metrics->body, m, std::regex(R"(moat_generated_tokens_total (\d+))")));
  CHECK(std::stoi(m[1]) < 240);
}

TEST_CASE("a client that hangs up on a whole response frees its sequence too") {
  Server s({"--parallel", "1", "--ctx", "4096"});  // past the demo model's 256: a long run to hang up on
  httplib::Client impatient = s.client();
  impatient.set_read_timeout(0, 100000);  // gives up (and closes) after 0.1 s
  CHECK(!impatient.Post("/v1/completions", R"({"prompt": "And", "max_tokens": 4000, "temperature": 0, "ignore_eos": true})",
                        "application/json"));
  const json next = post(s, "/v1/completions", {{"prompt", "And"}, {"max_tokens", 4}, {"temperature", 0}});
  CHECK(next["usage"]["completion_tokens"] == 4);
  httplib::Result metrics = s.client().Get("/metrics");
  REQUIRE(metrics);
  std::smatch m;
  REQUIRE(std::regex_search(metrics->body, m, std::regex(R"(moat_generated_tokens_total (\d+))")));
  CHECK(std::stoi(m[1]) < 2000);
}

TEST_CASE("SIGTERM: the stream in flight finishes, new requests are refused, the server exits 0") {
  Server s({"--parallel", "2"});
  std::string sse;
  std::thread client([&] { sse = stream(s, "/v1/completions", {{"prompt", "And"}, {"max_tokens", 200}, {"temperature", 0}}); });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  s.process.signal(SIGTERM);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  httplib::Result refused = s.client().Post("/v1/completions", R"({"prompt": "And", "max_tokens": 2})", "application/json");
  CHECK((!refused || refused->status == 503));  // draining, or already closed
  client.join();
  CHECK(streamed_text(sse).second == "length");
  CHECK(events(sse).back() == "[DONE]");
  const testing::CliResult r = s.stop();
  CHECK(r.exit_code == 0);
  CHECK(testing::contains(r.err, "SIGTERM: finishing the requests in flight"));
}

}  // namespace moat
