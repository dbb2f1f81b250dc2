// The command line as a llama.cpp user meets it: llama.cpp's option names, its
// sampling defaults with a printed seed, errors that name the real cause first and
// before any work, -n past the context, a warning past the training context.
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <regex>
#include <string>

#include "frontend/gguf_writer.h"
#include "tests/cli/cli_runner.h"

using moat::testing::contains;
using moat::testing::run_moat;

namespace {

const std::string kSource = MOAT_SOURCE_DIR;
const std::string kDemo = kSource + "/models/kjv-tiny.gguf";

std::string temp_path(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("moat-flags-" + std::to_string(::getpid()) + "-" + name)).string();
}

// The seed in the stats line ("| seed 123"), or "" when there is none.
std::string printed_seed(const std::string& err) {
  std::smatch m;
  return std::regex_search(err, m, std::regex(R"(\| seed (\d+))")) ? m[1].str() : "";
}

}  // namespace

TEST_CASE("llama.cpp's option names are aliases of moat's") {
  const std::string prompt_file = temp_path("prompt.txt");
  std::ofstream(prompt_file) << "And God said,";
  // --model, --file, --n-predict, -c, -s, -b, -ub, --threads, -dev as llama-cli spells them
  const auto llama = run_moat({"run", "--model", kDemo, "--file", prompt_file, "--n-predict", "6", "-c", "96", "-s", "5",
                               "-b", "64", "-ub", "32", "--threads", "1", "-dev", "cpu", "--temp", "0.7"});
  const auto moat = run_moat({"run", "-m", kDemo, "-f", prompt_file, "-n", "6", "--ctx", "96", "--seed", "5", "--batch", "32",
                              "-t", "1", "--device", "cpu", "--temp", "0.7"});
  REQUIRE(llama.exit_code == 0);
  CHECK(llama.out == moat.out);
  CHECK(contains(llama.err, "context 96 tokens (--ctx)"));
  CHECK(contains(llama.err, "generation 6 tokens"));
  CHECK(printed_seed(llama.err) == "5");
  std::filesystem::remove(prompt_file);
  // -i / -cnv start a conversation; --prompt is the first message
  const auto chat = run_moat({"run", "-cnv", "--chat-template", "deepseek3", "--prompt", "hello", "-n", "3", "--temp", "0"});
  CHECK(chat.exit_code == 0);
  CHECK(contains(chat.out, "hello"));
  // the help lists them
  const auto help = run_moat({"help", "run"});
  CHECK(help.exit_code == 0);
  CHECK(contains(help.out, "(also -c, --ctx-size)"));
  CHECK(contains(help.out, "usage: moat run"));
  CHECK(run_moat({"help", "nonsense"}).exit_code == 2);
}

TEST_CASE("llama.cpp options moat lacks say so and what comes closest - typos get a suggestion") {
  for (const char* option : {"-ngl", "--grammar", "--json-schema", "--prompt-cache", "-fa", "-ctv"}) {
    INFO(option);
    const auto r = run_moat({"run", option, "1", "-p", "x"});
    CHECK(r.exit_code == 2);
    CHECK(contains(r.err, std::string(option) + " (a llama.cpp option) is not supported"));
  }
  CHECK(contains(run_moat({"run", "-ngl", "99", "-p", "x"}).err, "--device"));
  CHECK(contains(run_moat({"run", "-ctv", "q8_0", "-p", "x"}).err, "--cache-type"));
  CHECK(contains(run_moat({"run", "--temperature", "1", "-p", "x"}).err, "did you mean --temp?"));
  CHECK(contains(run_moat({"run", "--seeed", "1", "-p", "x"}).err, "did you mean --seed?"));
  CHECK(contains(run_moat({"rn"}).err, "did you mean run?"));
  const auto no_command = run_moat({"-m", kDemo, "-p", "x"});
  CHECK(no_command.exit_code == 2);
  CHECK(contains(no_command.err, "moat run -m"));
}

TEST_CASE("--list-devices lists the devices wherever it is given") {
  const auto top = run_moat({"--list-devices"});
  CHECK(top.exit_code == 0);
  CHECK(contains(top.out, "cpu"));
  const auto run = run_moat({"run", "-p", "x", "--list-devices"});
  CHECK(run.exit_code == 0);
  CHECK(run.out == top.out);
}

TEST_CASE("sampling is llama.cpp's by default: a new seed each run, printed, and repeated by --seed") {
  const std::vector<std::string> args = {"run", "-p", "And God said,", "-n", "24", "--no-display-prompt"};
  const auto first = run_moat(args), second = run_moat(args);
  REQUIRE(first.exit_code == 0);
  REQUIRE(second.exit_code == 0);
  const std::string seed = printed_seed(first.err);
  REQUIRE(!seed.empty());
  CHECK(seed != printed_seed(second.err));  // 2^-32 to collide
  std::vector<std::string> again = args;
  again.insert(again.end(), {"--seed", seed});
  CHECK(run_moat(again).out == first.out);
  // --temp 0 is greedy and says so; -s -1 is a random seed, as in llama.cpp
  const auto greedy = run_moat({"run", "-p", "And God said,", "-n", "4", "--temp", "0"});
  CHECK(contains(greedy.err, "| greedy"));
  CHECK(!printed_seed(run_moat({"run", "-p", "x", "-n", "2", "-s", "-1"}).err).empty());
  CHECK(run_moat({"run", "-p", "x", "--seed", "-2"}).exit_code == 2);
  CHECK(run_moat({"run", "-p", "x", "--repeat-last-n", "-2"}).exit_code == 2);
  const auto penalties = run_moat({"run", "-p", "And God said,", "-n", "8", "--temp", "0", "--presence-penalty", "2",
                                   "--frequency-penalty", "0.5", "--repeat-last-n", "-1"});
  CHECK(penalties.exit_code == 0);
  CHECK(contains(penalties.err, "generation 8 tokens"));
}

TEST_CASE("-n past the context generates until it is full and says so - -n -1 runs until EOS or a full context") {
  const auto past = run_moat({"run", "-p", "And God said,", "-n", "400", "--ctx", "32", "--temp", "0", "--ignore-eos"});
  CHECK(past.exit_code == 0);
  CHECK(contains(past.err, "plus -n 400 passes the context of 32 tokens"));
  CHECK(contains(past.err, "the context of 32 tokens is full"));
  const auto all = run_moat({"run", "-p", "And God said,", "-n", "-1", "--ctx", "32", "--temp", "0", "--ignore-eos"});
  CHECK(all.exit_code == 0);
  CHECK(contains(all.err, "the context of 32 tokens is full"));
  CHECK(!contains(all.err, "passes the context"));
  CHECK(past.out == all.out);
  const auto chat_zero = run_moat({"run", "--chat", "-n", "0"}, "hi\n");
  CHECK(chat_zero.exit_code == 2);
  CHECK(contains(chat_zero.err, "-n 0"));
}

TEST_CASE("a bad model file is named for what it is, before anything about tokenizers") {
  const std::string empty = temp_path("empty.gguf"), text = temp_path("text.gguf"), truncated = temp_path("cut.gguf"),
                    v4 = temp_path("v4.gguf");
  std::ofstream(empty).close();
  std::ofstream(text) << "this is not a model\n";
  {
    std::ifstream in(kDemo, std::ios::binary);
    std::string head(100000, '\0');
    in.read(head.data(), static_cast<std::streamsize>(head.size()));
    std::ofstream(truncated, std::ios::binary) << head;
  }
  moat::gguf::Writer w;
  w.set_string("general.architecture", "deepseek4");
  const uint8_t zeros[16] = {};
  w.add_tensor("token_embd.weight", moat::gguf::GgmlType::F32, {4}, zeros);
  w.write(v4);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"/nonexistent/model.gguf", "cannot open"},
      {empty, "not a GGUF file"},
      {text, "not a GGUF file"},
      {truncated, "the file is truncated or corrupt"},
      {v4, "metadata key deepseek4.block_count is missing"}};  // read as DeepSeek-V4, found incomplete
  for (const auto& [path, cause] : cases) {
    INFO(path);
    for (const std::string text_option : {"-p", "-f"}) {  // run with a prompt, perplexity with a text file
      const std::string command = text_option == "-p" ? "run" : "perplexity";
      const auto r = run_moat({command, "-m", path, text_option, text_option == "-p" ? "x" : kSource + "/models/kjv-heldout.txt"});
      CHECK(r.exit_code == 2);
      CHECK(contains(r.err, cause));
      CHECK(!contains(r.err, "lacks"));  // nothing about a missing tokenizer
      CHECK(!contains(r.err, "--tokens"));
    }
  }
  for (const std::string& p : {empty, text, truncated, v4}) std::filesystem::remove(p);
}

TEST_CASE("options are checked before any work: a --logits-out that cannot be written") {
  const auto missing_folder = run_moat({"run", "-p", "x", "--logits-out", "/nonexistent/dir/l.npy"});
  CHECK(missing_folder.exit_code == 2);
  CHECK(contains(missing_folder.err, "--logits-out /nonexistent/dir/l.npy: the folder /nonexistent/dir does not exist"));
  CHECK(!contains(missing_folder.err, "context"));  // nothing was loaded
  const auto folder = run_moat({"run", "-p", "x", "--logits-out", "/tmp"});
  CHECK(folder.exit_code == 2);
  CHECK(contains(folder.err, "is a folder"));
}

TEST_CASE("a context past the model's training length is allowed with a warning") {
  const auto r = run_moat({"run", "-p", "x", "-n", "1", "--ctx", "1024", "--temp", "0"});
  CHECK(r.exit_code == 0);
  CHECK(contains(r.err, "warning: --ctx 1024 passes the 256 tokens the model was trained for"));
  const auto within = run_moat({"run", "-p", "x", "-n", "1", "--ctx", "128", "--temp", "0"});
  CHECK(!contains(within.err, "warning"));
}

TEST_CASE("progress goes to a log as one line per phase") {
  const std::string cache = temp_path("cache");  // a cold compile
  ::setenv("MOAT_CACHE_DIR", cache.c_str(), 1);
  const auto cold = run_moat({"run", "-p", "x", "-n", "2", "--temp", "0"});
  ::unsetenv("MOAT_CACHE_DIR");
  CHECK(cold.exit_code == 0);
  CHECK(std::regex_search(cold.err, std::regex(R"(moat: compile \d+ kernels \.\.\. done in \d+\.\d s\n)")));
  std::filesystem::remove_all(cache);
}
