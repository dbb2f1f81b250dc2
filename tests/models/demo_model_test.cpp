// The trained demo model (models/kjv-tiny.gguf, docs/demo_model.md) against the
// PyTorch model it was trained as (tools/train_tiny.py): logits, greedy text, and the
// same perplexity on every device here.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "backends/device.h"
#include "frontend/models/deepseek_weights.h"
#include "runtime/session.h"
#include "support/npy.h"
#include "tests/cli/cli_runner.h"

namespace {

using moat::testing::contains;
using moat::testing::read_all;
using moat::testing::run_moat;

const std::string kSource = MOAT_SOURCE_DIR;
const std::string kModel = kSource + "/models/kjv-tiny.gguf";
const std::string kData = kSource + "/tests/data/demo/";

std::vector<std::string> device_ids() {
  std::vector<std::string> ids = {"cpu"};
  if (contains(run_moat({"devices"}).out, "opencl:0")) ids.push_back("opencl:0");
  return ids;
}

}  // namespace

TEST_CASE("demo model: logits equal the PyTorch model's on every device") {
  const std::vector<int32_t> tokens = nlohmann::json::parse(read_all(kData + "tokens.json")).get<std::vector<int32_t>>();
  const moat::NpyF32 want = moat::read_npy_f32(kData + "logits.npy");
  const moat::models::DeepSeekModel model = moat::models::load_deepseek(kModel);
  moat::runtime::KernelCache cache("");  // memory only
  for (const std::string& id : device_ids()) {
    INFO(id);
    auto device = moat::backends::open_device(id, {});
    moat::runtime::Session session(model, *device, cache, {.cache_dtype = moat::ir::DType::f32});
    const std::vector<float> got = session.evaluate(tokens, 64);
    REQUIRE(got.size() == want.values.size());
    double diff = 0, scale = 0;
    for (size_t i = 0; i < got.size(); ++i) {
      diff = std::max(diff, static_cast<double>(std::abs(got[i] - want.values[i])));
      scale = std::max(scale, static_cast<double>(std::abs(want.values[i])));
    }
    CHECK(diff / scale < 1e-4);
  }
}

TEST_CASE("demo model: greedy text is the PyTorch model's, and the default of moat run") {
  const nlohmann::json greedy = nlohmann::json::parse(read_all(kData + "greedy.json"));
  for (const nlohmann::json& c : greedy.at("cases")) {
    const std::string prompt = c.at("prompt");
    INFO(prompt);
    const auto run = run_moat({"run", "-p", prompt, "-n", "40", "--temp", "0", "--no-display-prompt"});  // no -m: the demo model
    REQUIRE(run.exit_code == 0);
    CHECK(run.out == c.at("text").get<std::string>() + "\n");
  }
  const nlohmann::json& first = greedy.at("cases").at(0);
  for (const std::string& id : device_ids()) {
    const auto run = run_moat({"run", "-m", kModel, "-p", first.at("prompt"), "-n", "40", "--temp", "0", "--no-display-prompt",
                               "--device", id});
    CHECK(run.out == first.at("text").get<std::string>() + "\n");
  }
}

TEST_CASE("demo model: held-out perplexity is the same on every device (within 0.1%)") {
  // The first 4 KB of the held-out text (about 4 windows of 256 tokens) keeps this quick.
  const std::string text = read_all(kSource + "/models/kjv-heldout.txt").substr(0, 4096);
  const std::string path = (std::filesystem::temp_directory_path() / "moat_demo_heldout.txt").string();
  std::ofstream(path, std::ios::binary) << text;
  std::vector<double> ppl;
  for (const std::string& id : device_ids()) {
    const auto run = run_moat({"perplexity", "-m", kModel, "-f", path, "--device", id, "--json"});
    REQUIRE(run.exit_code == 0);
    ppl.push_back(nlohmann::json::parse(run.out).at("perplexity").get<double>());
  }
  CHECK(ppl[0] > 5);
  CHECK(ppl[0] < 200);
  for (double p : ppl) CHECK(std::abs(p / ppl[0] - 1) < 1e-3);
  std::filesystem::remove(path);
}
