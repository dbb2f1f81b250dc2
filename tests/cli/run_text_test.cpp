// moat run as a user meets it for text: greedy continuations against Hugging Face
// transformers (tests/data/goldens/greedy.json, tools/make_greedy_goldens.py) on every
// device here, streamed text, the stats line, --chat, the context limits.
#include <doctest/doctest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "frontend/tokenizer/tokenizer.h"
#include "tests/cli/cli_runner.h"

namespace {

using moat::testing::contains;
using moat::testing::run_moat;

const std::string kGoldens = std::string(MOAT_SOURCE_DIR) + "/tests/data/goldens/";
const std::string kV3 = kGoldens + "v3/model-f32.gguf";

std::vector<int32_t> parse_ids(const std::string& text) {
  std::istringstream s(text);
  std::vector<int32_t> ids;
  for (int32_t id; s >> id;) ids.push_back(id);
  return ids;
}

std::string join(const std::vector<int32_t>& ids) {
  std::string out;
  for (size_t i = 0; i < ids.size(); ++i) out += (i ? "," : "") + std::to_string(ids[i]);
  return out;
}

bool has_opencl() { return run_moat({"devices"}).out.find("opencl:0") != std::string::npos; }

}  // namespace

TEST_CASE("greedy generation equals transformers' argmax continuation, on every device, twice") {
  const nlohmann::json greedy = nlohmann::json::parse(moat::testing::read_all(kGoldens + "greedy.json"));
  const std::string prompt = join(greedy.at("prompt").get<std::vector<int32_t>>());
  const std::string n = std::to_string(greedy.at("n_gen").get<int>());
  std::vector<std::string> devices = {"cpu"};
  if (has_opencl()) devices.push_back("opencl:0");
  for (const auto& item : greedy.at("continuations").items()) {
    const std::string name = item.key();
    const std::vector<int32_t> expected = item.value().get<std::vector<int32_t>>();
    for (const std::string& device : devices) {
      if (device != "cpu" && name != "v3") continue;  // one model per extra device keeps the suite fast
      INFO(name, " on ", device);
      const auto first = run_moat({"run", "-m", kGoldens + name + "/model-f32.gguf", "--tokens", prompt, "-n", n,
                                   "--temp", "0", "--device", device});
      REQUIRE(first.exit_code == 0);
      CHECK(parse_ids(first.out) == expected);
      if (name == "v3") {
        const auto again = run_moat({"run", "-m", kV3, "--tokens", prompt, "-n", n, "--temp", "0", "--device", device});
        INFO("the second run exited ", again.exit_code, ", stderr: ", again.err);
        CHECK(again.out == first.out);
      }
    }
  }
}

TEST_CASE("a text prompt streams the prompt and its greedy continuation, then one stats line") {
  const std::string text = "In the beginning";
  const auto run = run_moat({"run", "-m", kV3, "-p", text, "-n", "12", "--temp", "0"});
  REQUIRE(run.exit_code == 0);
  // The same continuation as ids, decoded by the model's own tokenizer.
  const moat::tok::Tokenizer tokenizer = moat::tok::Tokenizer::open(kV3);
  const std::vector<int32_t> prompt = tokenizer.encode(text, tokenizer.add_bos());
  const auto ids = run_moat({"run", "-m", kV3, "--tokens", join(prompt), "-n", "12", "--temp", "0"});
  REQUIRE(ids.exit_code == 0);
  CHECK(run.out == text + tokenizer.decode(parse_ids(ids.out), false) + "\n");
  CHECK(contains(run.err, "prompt " + std::to_string(prompt.size()) + " tokens"));
  CHECK(contains(run.err, "generation 12 tokens"));
  CHECK(contains(run.err, "tokens/s"));
  CHECK(contains(run.err, "kernel cache:"));
  CHECK_FALSE(contains(run.err, "\r"));  // no progress bar when stderr is not a terminal

  const auto quiet = run_moat({"run", "-m", kV3, "-p", text, "-n", "12", "--temp", "0", "--no-display-prompt"});
  CHECK(quiet.out == run.out.substr(text.size()));
  const auto sampled1 = run_moat({"run", "-m", kV3, "-p", text, "-n", "12", "--temp", "0.8", "--seed", "3"});
  const auto sampled2 = run_moat({"run", "-m", kV3, "-p", text, "-n", "12", "--temp", "0.8", "--seed", "3"});
  CHECK(sampled1.out == sampled2.out);
}

TEST_CASE("the context: the model's by default, capped and reported, too long is exit 2 before any work") {
  const auto run = run_moat({"run", "-m", kV3, "-p", "abc", "-n", "2"});
  CHECK(contains(run.err, "context 128 tokens (the model's), cache"));
  const auto too_long = run_moat({"run", "-m", kV3, "-p", std::string(200, 'a')});
  CHECK(too_long.exit_code == 2);
  CHECK(contains(too_long.err, "passes the context of 128 tokens"));
  const auto explicit_n = run_moat({"run", "-m", kV3, "-p", "abc", "-n", "500", "--ignore-eos"});
  CHECK(explicit_n.exit_code == 0);  // generates until the context is full, and says so
  CHECK(contains(explicit_n.err, "plus -n 500 passes the context of 128 tokens"));
  CHECK(contains(explicit_n.err, "the context of 128 tokens is full"));
  // Without -n, generation stops where the context ends (--ignore-eos: the default
  // sampling, with a random seed, may otherwise draw the end of sequence first).
  const auto fills = run_moat({"run", "-m", kV3, "-p", std::string(100, 'a'), "--ctx", "104", "--ignore-eos"});
  CHECK(fills.exit_code == 0);
  CHECK(contains(fills.err, "generation 4 tokens"));
  const auto huge = run_moat({"run", "-m", kV3, "-p", "a", "--ctx", "1000000000"});
  CHECK(huge.exit_code == 2);
  CHECK(contains(huge.err, "lower --ctx"));
  // A budget the weights, cache and activations pass: exit 2 naming each, before any work.
  const auto budget = run_moat({"run", "-m", kV3, "-p", "abc", "-n", "2", "--memory-budget", "64K"});
  CHECK(budget.exit_code == 2);
  CHECK(contains(budget.err, "does not fit cpu: it needs"));
  CHECK(contains(budget.err, "latent cache"));
  CHECK(contains(budget.err, "the budget (--memory-budget) is 0.1 MiB"));
  CHECK(run_moat({"run", "-m", kV3, "-p", "abc", "-n", "2", "--memory-budget", "lots"}).exit_code == 2);
  CHECK(run_moat({"run", "-m", kV3, "-p", "abc", "-n", "2", "--cache-type", "q8_0"}).exit_code == 2);
  const auto f32 = run_moat({"run", "-m", kV3, "-p", "abc", "-n", "2", "--cache-type", "f32"});
  CHECK(f32.exit_code == 0);
}

TEST_CASE("--chat: one message per input line in the model's format, no known format is exit 2") {
  const auto chat = run_moat({"run", "-m", kV3, "--chat", "--chat-template", "deepseek3", "-n", "4", "--temp", "0"}, "hello\n\nagain\n");
  REQUIRE(chat.exit_code == 0);
  CHECK(contains(chat.out, "> hello\n"));
  CHECK(contains(chat.out, "> again\n"));
  CHECK(contains(chat.err, "generation 8 tokens"));
  const auto no_template = run_moat({"run", "-m", kV3, "--chat"}, "hello\n");
  CHECK(no_template.exit_code == 2);
  CHECK(contains(no_template.err, "--chat-template"));
  const auto bad = run_moat({"run", "-m", kV3, "--chat", "--chat-template", "chatml"}, "hello\n");
  CHECK(bad.exit_code == 2);
  CHECK(contains(bad.err, "deepseek3"));
}

TEST_CASE("models that cannot generate text say why: an incomplete file, a vocabulary-only file") {
  const auto other = run_moat({"run", "-m", std::string(MOAT_SOURCE_DIR) + "/tests/data/tiny.gguf", "-p", "hi"});
  CHECK(other.exit_code == 2);
  CHECK(contains(other.err, "deepseek2.block_count is missing"));
  CHECK(!contains(other.err, "--tokens"));
  const std::string vocab_file = std::string(MOAT_SOURCE_DIR) + "/../shared/data/vocab/deepseek-llm.gguf";
  if (!std::filesystem::exists(vocab_file)) {
    MESSAGE("skipped the vocabulary-only file: " << vocab_file << " is absent (shared test data)");
    return;
  }
  const auto vocab = run_moat({"run", "-m", vocab_file, "-p", "hi"});
  CHECK(vocab.exit_code == 2);
  CHECK(contains(vocab.err, "vocabulary only"));
}
