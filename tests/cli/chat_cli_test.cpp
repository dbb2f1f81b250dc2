// moat run --chat on the demo model as a user meets it: the model's own chat template,
// Ctrl-C during a reply and twice in a row, a conversation longer than the context.
// Greedy (--temp 0) throughout; replies are short except where a test interrupts one.
#include <doctest/doctest.h>
#include <signal.h>

#include <chrono>
#include <thread>

#include "tests/cli/cli_runner.h"

namespace {

using moat::testing::CliProcess;
using moat::testing::contains;
using moat::testing::run_moat;
using moat::testing::start_moat;
using moat::testing::wait_for_output;
using moat::testing::wait_moat;
using namespace std::chrono_literals;

// The text after `marker` in `out` (empty when `marker` is not there).
std::string after(const std::string& out, const std::string& marker) {
  const size_t at = out.find(marker);
  return at == std::string::npos ? "" : out.substr(at + marker.size());
}

// Whether the reply after "> MESSAGE\n" has streamed at least `bytes` bytes.
auto reply_started(const std::string& message, size_t bytes) {
  return [marker = "> " + message + "\n", bytes](const std::string& out) { return after(out, marker).size() >= bytes; };
}

int64_t generated_tokens(const std::string& err) {
  const std::string marker = "generation ";
  const size_t at = err.rfind(marker);
  return at == std::string::npos ? -1 : std::stoll(err.substr(at + marker.size()));
}

}  // namespace

TEST_CASE("the demo model answers in its own chat format (issue 17's example)") {
  const auto r = run_moat({"run", "--chat", "-n", "16", "--temp", "0"}, "Who is David?\n");
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK_FALSE(contains(r.err, "no chat template"));
  CHECK(contains(r.out, "> Who is David?\n"));
  CHECK(after(r.out, "> Who is David?\n").size() > 1);  // some reply, then the newline
  CHECK(generated_tokens(r.err) > 0);
}

TEST_CASE("Ctrl-C stops the reply and the chat goes on with the next piped message and ends with status 0") {
  // Replies that would run to the end of a 32768-token context: many seconds, even where
  // the demo model decodes thousands of tokens a second (2048 took under the 1.2 s wait).
  CliProcess p = start_moat({"run", "--chat", "-n", "100000", "--ctx", "32768", "--temp", "0"}, "first\nsecond\n");
  REQUIRE(wait_for_output(p, reply_started("first", 8), 120s));
  p.signal(SIGINT);
  REQUIRE(wait_for_output(p, reply_started("second", 8), 120s));
  std::this_thread::sleep_for(std::chrono::milliseconds(1200));  // past the double-Ctrl-C window
  p.signal(SIGINT);
  const auto r = wait_moat(p);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  CHECK(contains(r.out, "> first\n"));
  CHECK(contains(r.out, "> second\n"));
  const std::string first_reply = after(r.out, "> first\n");
  CHECK(first_reply.find("> second\n") >= 8);  // the first reply streamed before it was cut
  size_t stopped = 0;
  for (size_t at = r.err.find("reply stopped (Ctrl-C)"); at != std::string::npos;
       at = r.err.find("reply stopped (Ctrl-C)", at + 1))
    ++stopped;
  CHECK(stopped == 2);
  CHECK_FALSE(contains(r.err, "filled the context"));  // stopped, not run to the end
  const int64_t tokens = generated_tokens(r.err);      // the stats line comes at the end
  CHECK(tokens > 0);
  CHECK(tokens < 2 * 32768);
}

TEST_CASE("a second Ctrl-C within a second ends the chat with status 130") {
  CliProcess p = start_moat({"run", "--chat", "-n", "100000", "--ctx", "32768", "--temp", "0"}, "first\nsecond\n");
  REQUIRE(wait_for_output(p, reply_started("first", 8), 120s));
  p.signal(SIGINT);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  p.signal(SIGINT);
  const auto r = wait_moat(p);
  CHECK(r.signal == 0);  // it handles SIGINT and exits, it is not killed by it
  CHECK(r.exit_code == 130);
}

TEST_CASE("a conversation longer than the context drops the oldest exchanges and answers every message") {
  const std::string input = "In the beginning\nAnd God said\nLet there be light\nand there was light\nThe LORD is my shepherd\n";
  const auto r = run_moat({"run", "--chat", "-n", "24", "--ctx", "64", "--temp", "0"}, input);
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);
  for (const char* message : {"In the beginning", "And God said", "Let there be light", "and there was light",
                              "The LORD is my shepherd"})
    CHECK(contains(r.out, std::string("> ") + message + "\n"));
  CHECK(contains(r.err, "tokens is full: dropped the oldest exchange"));
  CHECK(after(r.out, "> The LORD is my shepherd\n").size() > 1);  // the last message is answered too
}

TEST_CASE("a message that cannot fit the context even alone ends the chat with status 2 and says why") {
  std::string long_message;
  for (int i = 0; i < 80; ++i) long_message += "word ";
  const auto r = run_moat({"run", "--chat", "-n", "8", "--ctx", "64", "--temp", "0"}, "hello\n" + long_message + "\nafter\n");
  CHECK(r.exit_code == 2);
  CHECK(contains(r.err, "does not fit the context of 64 tokens"));
  CHECK(contains(r.err, "--ctx"));
  CHECK(contains(r.out, "> hello\n"));
  CHECK_FALSE(contains(r.out, "> after\n"));
}

TEST_CASE("--chat-template's help and its error list the same format names") {
  const auto help = run_moat({"run", "--help"});
  const auto bad = run_moat({"run", "--chat", "--chat-template", "chatml"}, "hello\n");
  CHECK(bad.exit_code == 2);
  for (const char* name : {"deepseek3 (", "deepseek3.1 (", "deepseek-r1 (", "deepseek-r1-orig (", "deepseek2.5 (",
                           "deepseek2 ("}) {
    CHECK_MESSAGE(contains(help.out, name), name);
    CHECK_MESSAGE(contains(bad.err, name), name);
  }
}
