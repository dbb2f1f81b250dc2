// The moat command line as a user meets it: exit codes, messages, JSON output.
#include <doctest/doctest.h>
#include <algorithm>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "backends/cpu/llvm_verify.h"
#include "tests/cli/cli_runner.h"

namespace {

using Result = moat::testing::CliResult;
using moat::testing::read_all;
using moat::testing::run_moat;

const std::string kSource = MOAT_SOURCE_DIR;
const std::string kTinyGguf = kSource + "/tests/data/tiny.gguf";
const std::string kVocab = kSource + "/../shared/data/vocab/deepseek-llm.gguf";

using moat::testing::contains;

}  // namespace

TEST_CASE("help and unknown commands") {
  Result help = run_moat({"--help"});
  CHECK(help.exit_code == 0);
  for (const char* command : {"devices", "inspect", "tokenize", "run", "bench", "emit"}) {
    CHECK(contains(help.out, command));
    Result h = run_moat({command, "--help"});
    CHECK(h.exit_code == 0);
    CHECK(contains(h.out, std::string("usage: moat ") + command));
  }
  Result unknown = run_moat({"frobnicate"});
  CHECK(unknown.exit_code == 2);
  CHECK(contains(unknown.err, "unknown command 'frobnicate'"));
  Result bad_option = run_moat({"inspect", "--colour", kTinyGguf});
  CHECK(bad_option.exit_code == 2);
  CHECK(contains(bad_option.err, "unknown option --colour"));
  CHECK(run_moat({}).exit_code == 2);
}

TEST_CASE("what a model file lacks is said first - a missing value is named") {
  Result run = run_moat({"run", "-m", kTinyGguf, "-p", "hello", "-n", "4"});
  CHECK(run.exit_code == 2);
  CHECK(contains(run.err, "deepseek2.block_count is missing"));  // what the file lacks, not that it has no tokenizer
  CHECK(!contains(run.err, "tokenizer"));
  Result emit = run_moat({"emit", "--graph", "x.mir", "--target"});
  CHECK(emit.exit_code == 2);
  CHECK(contains(emit.err, "--target needs a value"));
}

TEST_CASE("tokenize prints the ids of a text on one line") {
  // Errors first: they need no shared data.
  Result missing = run_moat({"tokenize", "-m", kSource + "/no-such-model.gguf", "-p", "hi"});
  CHECK(missing.exit_code == 2);
  CHECK(contains(missing.err, "no-such-model.gguf"));
  Result no_tokenizer = run_moat({"tokenize", "-m", kTinyGguf, "-p", "hi", "--no-bos"});
  CHECK(no_tokenizer.exit_code == 2);
  CHECK(contains(no_tokenizer.err, "tokenizer.ggml.model is missing"));
  Result both = run_moat({"tokenize", "-m", kTinyGguf, "-p", "hi", "-f", "x.txt"});
  CHECK(both.exit_code == 2);
  CHECK(contains(both.err, "one of -p TEXT or -f FILE"));

  if (!std::filesystem::exists(kVocab)) {
    MESSAGE("skipped: " << kVocab << " is absent (shared test data)");
    return;
  }
  // "Hello world" is line 12 of deepseek-llm.gguf.out: 17464 1843; BOS is 100000.
  Result hello = run_moat({"tokenize", "-m", kVocab, "-p", "Hello world"});
  CHECK(hello.exit_code == 0);
  CHECK(hello.out == "100000 17464 1843\n");
  Result no_bos = run_moat({"tokenize", "-m", kVocab, "-p", "Hello world", "--no-bos"});
  CHECK(no_bos.out == "17464 1843\n");
  Result empty = run_moat({"tokenize", "-m", kVocab, "-p", ""});
  CHECK(empty.exit_code == 0);
  CHECK(empty.out == "\n");
  const std::string file = (std::filesystem::temp_directory_path() / "moat_tokenize_input.txt").string();
  std::ofstream(file, std::ios::binary) << " Hello world";  // line 13: 37727 1843
  Result from_file = run_moat({"tokenize", "-m", kVocab, "-f", file, "--no-bos"});
  CHECK(from_file.out == "37727 1843\n");
  std::filesystem::remove(file);
  Result no_file = run_moat({"tokenize", "-m", kVocab, "-f", kSource + "/no-such-text.txt"});
  CHECK(no_file.exit_code == 2);
  CHECK(contains(no_file.err, "no-such-text.txt"));
}

TEST_CASE("emit writes one file per distinct kernel of a graph, and explains bad options") {
  const std::string graph = kSource + "/tests/data/graphs/ffn.mir";
  const std::string dir = std::filesystem::temp_directory_path() / ("moat-emit-test-" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  Result ll = run_moat({"emit", "--graph", graph, "--sym", "T=3", "--target", "llvm", "-o", dir});
  REQUIRE(ll.exit_code == 0);
  CHECK(contains(ll.out, "wrote 7 llvm kernels"));
  int files = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    CHECK(entry.path().extension() == ".ll");
    std::ifstream in(entry.path());
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    CHECK(moat::backends::cpu::verify_llvm_ir(text) == "");
    ++files;
  }
  CHECK(files == 7);
  Result kir = run_moat({"emit", "--graph", graph, "--sym", "T=1", "--target", "kir", "-o", dir + "/kir"});
  CHECK(kir.exit_code == 0);
  std::filesystem::remove_all(dir);

  Result unbound = run_moat({"emit", "--graph", graph, "--target", "llvm", "-o", dir});
  CHECK(unbound.exit_code == 2);
  CHECK(contains(unbound.err, "--sym T=N"));
  Result bad_sym = run_moat({"emit", "--graph", graph, "--sym", "T", "--target", "llvm", "-o", dir});
  CHECK(bad_sym.exit_code == 2);
  CHECK(contains(bad_sym.err, "is not NAME=COUNT"));
  Result missing = run_moat({"emit", "--graph", "/nonexistent.mir", "--sym", "T=1", "-o", dir});
  CHECK(missing.exit_code == 2);
  CHECK(contains(missing.err, "/nonexistent.mir"));
  Result target = run_moat({"emit", "--graph", graph, "--sym", "T=1", "--target", "vulkan", "-o", dir});
  CHECK(target.exit_code == 2);
  CHECK(contains(target.err, "--target vulkan"));
}

TEST_CASE("devices lists the host CPU, as text and as JSON") {
  Result text = run_moat({"devices"});
  CHECK(text.exit_code == 0);
  CHECK(contains(text.out, "cpu"));
  Result json = run_moat({"devices", "--json"});
  REQUIRE(json.exit_code == 0);
  auto parsed = nlohmann::json::parse(json.out);
  REQUIRE(parsed["devices"].size() >= 1);
  CHECK(parsed["devices"][0]["id"] == "cpu");
  CHECK(parsed["devices"][0]["memory_bytes"].get<uint64_t>() > 0);
  CHECK(parsed["backends"].size() == 4);
  const auto& properties = parsed["devices"][0]["properties"];
  CHECK(properties["max_work_group_size"] == 1024);
  CHECK(properties["local_memory_bytes"].get<int64_t>() == (1 << 20));
  CHECK(properties["sub_group_size"] == 1);
  int vector_bits = properties["vector_bits"].get<int>();
  CHECK((vector_bits == 128 || vector_bits == 256 || vector_bits == 512));
  auto dtypes = properties["dtypes"].get<std::vector<std::string>>();
  CHECK(std::find(dtypes.begin(), dtypes.end(), "bf16") != dtypes.end());
  CHECK(contains(properties["compile_fingerprint"].get<std::string>(), "llvm 14"));
  CHECK(contains(text.out, "dtypes: f32"));
  CHECK(contains(text.out, "-bit vectors"));
}

TEST_CASE("inspect a GGUF file, as text and as JSON") {
  Result text = run_moat({"inspect", kTinyGguf});
  REQUIRE(text.exit_code == 0);
  CHECK(contains(text.out, "architecture: deepseek2"));
  CHECK(contains(text.out, "GGUF v3"));
  Result json = run_moat({"inspect", kTinyGguf, "--json"});
  REQUIRE(json.exit_code == 0);
  auto parsed = nlohmann::json::parse(json.out);
  CHECK(parsed["metadata"]["general.architecture"] == "deepseek2");
  REQUIRE(parsed["tensors"].is_array());
  CHECK(parsed["tensors"].size() >= 4);
  for (const auto& t : parsed["tensors"]) {
    CHECK(t.contains("name"));
    CHECK(t.contains("dtype"));
    CHECK(t["shape"].is_array());
    CHECK(t["bytes"].get<uint64_t>() > 0);
    CHECK(t.contains("offset"));
  }
}

TEST_CASE("inspect shows the tensor type mix - tensors and bytes per type") {
  // tests/data/tiny.gguf: two F32 tensors (48 + 640 bytes), one each of Q8_0 (136), Q4_0 (72)
  // and F16 (16); the mix lists them by bytes, most first, with their share of all bytes.
  Result text = run_moat({"inspect", kTinyGguf});
  REQUIRE(text.exit_code == 0);
  const size_t mix = text.out.find("tensor types (4):");
  REQUIRE(mix != std::string::npos);
  std::istringstream lines(text.out.substr(mix));
  std::string line;
  std::getline(lines, line);  // the title
  std::getline(lines, line);  // the column names
  std::vector<std::vector<std::string>> rows;
  for (int i = 0; i < 4 && std::getline(lines, line); ++i) {
    std::istringstream words(line);
    rows.emplace_back(std::istream_iterator<std::string>(words), std::istream_iterator<std::string>());
  }
  const std::vector<std::vector<std::string>> expected = {
      {"F32", "2", "688", "75.4%"},  // 688 of the file's 912 tensor bytes
      {"Q8_0", "1", "136", "14.9%"},
      {"Q4_0", "1", "72", "7.9%"},
      {"F16", "1", "16", "1.8%"}};
  CHECK(rows == expected);

  Result json = run_moat({"inspect", kTinyGguf, "--json"});
  REQUIRE(json.exit_code == 0);
  const auto types = nlohmann::json::parse(json.out)["tensor_types"];
  REQUIRE(types.size() == 4);
  CHECK(types[0] == nlohmann::json({{"dtype", "F32"}, {"tensors", 2}, {"bytes", 688}}));
  CHECK(types[1] == nlohmann::json({{"dtype", "Q8_0"}, {"tensors", 1}, {"bytes", 136}}));
  CHECK(types[2] == nlohmann::json({{"dtype", "Q4_0"}, {"tensors", 1}, {"bytes", 72}}));
  CHECK(types[3] == nlohmann::json({{"dtype", "F16"}, {"tensors", 1}, {"bytes", 16}}));
}

TEST_CASE("inspect the real DeepSeek LLM vocabulary GGUF") {
  if (!std::filesystem::exists(kVocab)) {
    MESSAGE("skipped: " << kVocab << " is absent (shared test data)");
    return;
  }
  Result text = run_moat({"inspect", kVocab});
  REQUIRE(text.exit_code == 0);
  CHECK(contains(text.out, "tokenizer.ggml.pre"));
  CHECK(contains(text.out, "\"deepseek-llm\""));
  CHECK(contains(text.out, "[102400 x string]"));
  Result json = run_moat({"inspect", kVocab, "--json"});
  REQUIRE(json.exit_code == 0);
  auto parsed = nlohmann::json::parse(json.out);
  CHECK(parsed["metadata"]["tokenizer.ggml.pre"] == "deepseek-llm");
  CHECK(parsed["metadata"]["tokenizer.ggml.tokens"]["length"] == 102400);
  CHECK(parsed["metadata"]["tokenizer.ggml.tokens"]["array_of"] == "string");
  CHECK(parsed["tensors"].empty());
}

TEST_CASE("inspect a Hugging Face folder") {
  std::string folder = kSource + "/tests/data/hf_tiny";
  Result text = run_moat({"inspect", folder});
  REQUIRE(text.exit_code == 0);
  CHECK(contains(text.out, "safetensors (2 shards + config.json)"));
  CHECK(contains(text.out, "hidden_size"));
  Result json = run_moat({"inspect", folder, "--json"});
  REQUIRE(json.exit_code == 0);
  auto parsed = nlohmann::json::parse(json.out);
  CHECK(parsed["metadata"].contains("model_type"));
  CHECK(!parsed["tensors"].empty());
  CHECK(parsed["tensors"][0].contains("file"));
}

TEST_CASE("bad files give exit 2 and a message naming the file, never a signal") {
  CHECK(run_moat({"inspect", "/nonexistent/model.gguf"}).exit_code == 2);
  Result missing = run_moat({"inspect", "/nonexistent/model.gguf"});
  CHECK(contains(missing.err, "/nonexistent/model.gguf"));
  Result not_model = run_moat({"inspect", kSource + "/README.md"});
  CHECK(not_model.exit_code == 2);
  CHECK(contains(not_model.err, "README.md"));

  std::string original = read_all(kTinyGguf);
  REQUIRE(original.size() > 64);
  std::string path = (std::filesystem::temp_directory_path() / "moat_cli_cut.gguf").string();
  // A few dozen cuts through the header, metadata, tensor infos and data, via the CLI.
  for (size_t cut = 0; cut < original.size(); cut += std::max<size_t>(1, original.size() / 40)) {
    std::ofstream(path, std::ios::binary | std::ios::trunc) << original.substr(0, cut);
    Result r = run_moat({"inspect", path});
    CHECK_MESSAGE(r.signal == 0, "cut at ", cut);
    CHECK_MESSAGE((r.exit_code == 2 || r.exit_code == 0), "cut at ", cut);
    if (r.exit_code == 2) CHECK(contains(r.err, path));
  }
  std::filesystem::remove(path);
}

TEST_CASE("run: token ids in, greedy ids and every position's logits out, bad input is exit 2") {
  const std::string model = kSource + "/tests/data/goldens/v2_lite/model-bf16.gguf";
  const std::string npy = std::filesystem::temp_directory_path() / ("moat-run-test-" + std::to_string(::getpid()) + ".npy");
  Result ok = run_moat({"run", "-m", model, "--tokens", "1,2,3", "-n", "2", "--temp", "0", "--logits-out", npy});
  REQUIRE(ok.exit_code == 0);
  std::istringstream ids(ok.out);
  int a = -1, b = -1;
  ids >> a >> b;
  CHECK((a >= 0 && a < 256 && b >= 0 && b < 256));
  CHECK(contains(ok.err, "prompt 3 tokens"));
  CHECK(contains(ok.err, "generation 2 tokens"));
  std::ifstream in(npy, std::ios::binary);
  std::string header(128, '\0');
  in.read(header.data(), 128);
  CHECK(contains(header, "'shape': (5, 256)"));
  std::filesystem::remove(npy);

  Result bad_id = run_moat({"run", "-m", model, "--tokens", "1,x"});
  CHECK(bad_id.exit_code == 2);
  CHECK(contains(bad_id.err, "'x' is not a token id"));
  Result big_id = run_moat({"run", "-m", model, "--tokens", "1,256"});
  CHECK(big_id.exit_code == 2);
  CHECK(contains(big_id.err, "outside the vocabulary of 256"));
  Result ctx = run_moat({"run", "-m", model, "--tokens", "1,2,3", "-n", "5", "--ctx", "4", "--ignore-eos"});  // a random seed
  CHECK(ctx.exit_code == 0);  // generates until the context is full, and says so
  CHECK(contains(ctx.err, "passes the context of 4"));
  CHECK(contains(ctx.err, "generation 1 tokens"));
  CHECK(contains(ctx.err, "the context of 4 tokens is full"));
  Result missing = run_moat({"run", "-m", "/nonexistent/model.gguf", "--tokens", "1"});
  CHECK(missing.exit_code == 2);
  CHECK(contains(missing.err, "/nonexistent/model.gguf"));
  // sampling: the same seed gives the same ids, greedy is the default
  Result s1 = run_moat({"run", "-m", model, "--tokens", "1,2,3", "-n", "6", "--temp", "0.9", "--seed", "7"});
  Result s2 = run_moat({"run", "-m", model, "--tokens", "1,2,3", "-n", "6", "--temp", "0.9", "--seed", "7"});
  CHECK(s1.exit_code == 0);
  CHECK(s1.out == s2.out);
  Result bad_top_p = run_moat({"run", "-m", model, "--tokens", "1", "--top-p", "2"});
  CHECK(bad_top_p.exit_code == 2);
  CHECK(contains(bad_top_p.err, "--top-p"));
  Result routing = run_moat({"run", "-m", model, "--tokens", "1", "--routing", "bogus"});
  CHECK(routing.exit_code == 2);
  CHECK(contains(routing.err, "routing method 'bogus'"));
  Result not_deepseek = run_moat({"run", "-m", kTinyGguf, "--tokens", "1"});
  CHECK(not_deepseek.exit_code == 2);
}

TEST_CASE("emit -m writes every distinct kernel a model runs") {
  const std::string dir = std::filesystem::temp_directory_path() / ("moat-emit-model-" + std::to_string(::getpid()));
  Result r = run_moat({"emit", "-m", kSource + "/tests/data/goldens/v3", "--target", "kir", "-o", dir});
  REQUIRE(r.exit_code == 0);
  CHECK(contains(r.out, "wrote 88 kir kernels (246 launches)"));
  std::filesystem::remove_all(dir);
}

namespace {

// Whether `svg` is one <svg> element whose tags all close in order (comments,
// declarations and self-closing tags aside): XML-ish enough for a chart.
bool balanced_svg(const std::string& svg) {
  if (!svg.starts_with("<svg")) return false;
  std::vector<std::string> open;
  for (size_t at = svg.find('<'); at != std::string::npos; at = svg.find('<', at + 1)) {
    const size_t end = svg.find('>', at);
    if (end == std::string::npos) return false;
    const std::string tag = svg.substr(at + 1, end - at - 1);
    if (tag.empty() || tag[0] == '?' || tag[0] == '!' || tag.back() == '/') continue;
    const bool closing = tag[0] == '/';
    const std::string name = tag.substr(closing ? 1 : 0, tag.find_first_of(" \t\n/", closing ? 1 : 0) - (closing ? 1 : 0));
    if (!closing) {
      open.push_back(name);
      continue;
    }
    if (open.empty() || open.back() != name) return false;
    open.pop_back();
    if (open.empty() && svg.find('<', end) != std::string::npos) return false;  // one root
  }
  return open.empty();
}

}  // namespace

TEST_CASE("bench: a row per device and test as Markdown, JSON and SVG, and bad options are exit 2") {
  const std::string model = kSource + "/tests/data/goldens/v3/model-f32.gguf";
  Result demo = run_moat({"bench", "-p", "8", "-n", "0", "-r", "1", "--device", "cpu"});  // no -m: the demo model
  CHECK(demo.exit_code == 0);
  CHECK(contains(demo.out, "pp8"));
  CHECK(contains(demo.out, "8.03 M"));
  Result bad_device = run_moat({"bench", "-m", model, "--device", "cpu,tpu:0"});
  CHECK(bad_device.exit_code == 2);
  CHECK(contains(bad_device.err, "--device: no device 'tpu:0'"));
  Result bad_reps = run_moat({"bench", "-m", model, "-r", "0"});
  CHECK(bad_reps.exit_code == 2);
  CHECK(contains(bad_reps.err, "option -r"));
  Result nothing = run_moat({"bench", "-m", model, "-p", "0", "-n", "0"});
  CHECK(nothing.exit_code == 2);
  CHECK(contains(nothing.err, "nothing to measure"));
  Result too_long = run_moat({"bench", "-m", model, "-p", "4096", "-n", "0", "-r", "1", "--device", "cpu"});  // context: 128
  CHECK(too_long.exit_code == 0);  // capped, as run -n is
  CHECK(contains(too_long.err, "-p 4096 does not fit the model's context of 128 tokens; running pp128 instead"));
  Result missing = run_moat({"bench", "-m", "/nonexistent/model.gguf"});
  CHECK(missing.exit_code == 2);
  CHECK(contains(missing.err, "/nonexistent/model.gguf"));
  Result not_deepseek = run_moat({"bench", "-m", kTinyGguf, "--device", "cpu"});
  CHECK(not_deepseek.exit_code == 2);
  Result bad_json = run_moat({"bench", "-m", model, "--json", "/nonexistent-dir/x.json"});
  CHECK(bad_json.exit_code == 2);
  CHECK(contains(bad_json.err, "--json: cannot write"));

  // Every device the registry lists runs: the expected rows.
  Result devices = run_moat({"devices", "--json"});
  REQUIRE(devices.exit_code == 0);
  std::vector<std::string> ids;
  const nlohmann::json listed = nlohmann::json::parse(devices.out);
  for (const auto& d : listed["devices"]) ids.push_back(d["id"].get<std::string>());
  REQUIRE(!ids.empty());
  const std::string dir = std::filesystem::temp_directory_path() / ("moat-bench-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string json_path = dir + "/bench.json", md_path = dir + "/bench.md", svg_path = dir + "/bench.svg";
  Result r = run_moat({"bench", "-m", model, "--device", "all", "-p", "8", "-n", "4", "-r", "2", "--json", json_path,
                       "--md", md_path, "--svg", svg_path});
  REQUIRE_MESSAGE(r.exit_code == 0, r.err);

  const nlohmann::json rows = nlohmann::json::parse(read_all(json_path));
  REQUIRE(rows.is_array());
  CHECK(rows.size() == 2 * ids.size());
  for (const std::string& id : ids)
    for (const char* test : {"pp8", "tg4"}) {
      const auto row = std::find_if(rows.begin(), rows.end(), [&](const auto& j) { return j["device"] == id && j["test"] == test; });
      REQUIRE_MESSAGE(row != rows.end(), id, " ", test);
      const nlohmann::json& j = *row;
      for (const char* field : {"model_filename", "model_type", "model_size", "model_n_params", "n_prompt", "n_gen",
                                "n_threads", "avg_ns", "stddev_ns", "avg_ts", "stddev_ts", "samples_ns", "samples_ts",
                                "test_time", "build_commit", "device", "backend", "load_ms", "compile_ms",
                                "compile_warm_ms", "peak_bytes", "bandwidth_share", "bandwidth_gbs"})
        CHECK_MESSAGE(j.contains(field), field);
      const bool pp = std::string(test) == "pp8";
      CHECK(j["n_prompt"] == (pp ? 8 : 0));
      CHECK(j["n_gen"] == (pp ? 0 : 4));
      CHECK(j["samples_ns"].size() == 2);
      CHECK(j["samples_ts"].size() == 2);
      CHECK(j["avg_ts"].get<double>() > 0);
      CHECK(j["compile_ms"].get<double>() > 0);
      // the device held the weights at least
      CHECK(j["peak_bytes"].get<uint64_t>() >= j["model_size"].get<uint64_t>());
      CHECK(j["model_filename"] == model);
      if (pp) CHECK(j["bandwidth_share"].is_null());
      if (!pp && id == "cpu") CHECK(j["bandwidth_share"].get<double>() > 0);  // the host's bandwidth is measured
      CHECK(j["n_threads"].is_null() == (id != "cpu"));
    }

  const std::string md = read_all(md_path);
  CHECK(r.out == md);  // stdout is the same table
  CHECK(contains(md, "| model | size | params | backend | device | threads | test | t/s |"));
  std::vector<std::string> lines;
  for (std::istringstream in(md); std::getline(in, lines.emplace_back());) {
  }
  for (const std::string& id : ids)
    for (const char* test : {"pp8", "tg4"}) {
      const bool row = std::any_of(lines.begin(), lines.end(), [&](const std::string& line) {
        return contains(line, "| " + id + " | ") && contains(line, std::string("| ") + test + " | ");
      });
      CHECK_MESSAGE(row, id, " ", test);
    }
  size_t table_rows = 0;
  for (size_t at = md.find("\n| deepseek2 "); at != std::string::npos; at = md.find("\n| deepseek2 ", at + 1)) ++table_rows;
  CHECK(table_rows == 2 * ids.size());

  const std::string svg = read_all(svg_path);
  CHECK(balanced_svg(svg));
  CHECK(contains(svg, "model-f32.gguf"));
  for (const std::string& id : ids) CHECK(contains(svg, ">" + id + "<"));
  std::filesystem::remove_all(dir);
}
