// moat perplexity: the same number on every device, and the number the logits of
// `moat run --logits-out` give (whose parity with transformers the goldens test).
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "frontend/tokenizer/tokenizer.h"
#include "support/npy.h"
#include "tests/cli/cli_runner.h"

namespace {

using moat::testing::contains;
using moat::testing::run_moat;

const std::string kV3 = std::string(MOAT_SOURCE_DIR) + "/tests/data/goldens/v3/model-f32.gguf";
const std::string kText = "In the beginning God created the heaven and the earth. And the earth was without form.";

std::string write_text() {
  const std::string path = (std::filesystem::temp_directory_path() / "moat_ppl_text.txt").string();
  std::ofstream(path, std::ios::binary) << kText;
  return path;
}

double perplexity_from_logits(const std::vector<int32_t>& ids, const moat::NpyF32& logits) {
  const size_t vocab = static_cast<size_t>(logits.shape.at(1));
  double nll = 0;
  for (size_t i = 0; i + 1 < ids.size(); ++i) {
    const float* row = logits.values.data() + i * vocab;
    double top = row[0], sum = 0;
    for (size_t v = 0; v < vocab; ++v) top = std::max<double>(top, row[v]);
    for (size_t v = 0; v < vocab; ++v) sum += std::exp(row[v] - top);
    nll += std::log(sum) - (row[ids[i + 1]] - top);
  }
  return std::exp(nll / static_cast<double>(ids.size() - 1));
}

}  // namespace

TEST_CASE("perplexity: from the logits, the same on every device, windows as documented") {
  const std::string text = write_text();
  const moat::tok::Tokenizer tokenizer = moat::tok::Tokenizer::open(kV3);
  const std::vector<int32_t> ids = tokenizer.encode(kText, false);
  REQUIRE(ids.size() < 128);
  std::string joined;
  for (size_t i = 0; i < ids.size(); ++i) joined += (i ? "," : "") + std::to_string(ids[i]);
  const std::string npy = (std::filesystem::temp_directory_path() / "moat_ppl_logits.npy").string();
  REQUIRE(run_moat({"run", "-m", kV3, "--tokens", joined, "--logits-out", npy}).exit_code == 0);
  const double expected = perplexity_from_logits(ids, moat::read_npy_f32(npy));

  const std::string window = std::to_string(ids.size());
  std::vector<std::string> devices = {"cpu"};
  if (contains(run_moat({"devices"}).out, "opencl:0")) devices.push_back("opencl:0");
  for (const std::string& device : devices) {
    INFO(device);
    (void)run_moat({"run", "-m", kV3, "--tokens", "1", "--device", device});  // warm the kernel cache
    const auto one = run_moat({"perplexity", "-m", kV3, "-f", text, "--window", window, "--device", device, "--json"});
    REQUIRE(one.exit_code == 0);
    const nlohmann::json j = nlohmann::json::parse(one.out);
    CHECK(j.at("scored_tokens") == static_cast<int64_t>(ids.size()) - 1);
    CHECK(j.at("windows") == 1);
    CHECK(std::abs(j.at("perplexity").get<double>() / expected - 1) < 1e-5);
  }
  // Two windows score two tokens fewer than one window over the same ids.
  const auto two = run_moat({"perplexity", "-m", kV3, "-f", text, "--window", std::to_string(ids.size() / 2 + 1), "--json"});
  REQUIRE(two.exit_code == 0);
  CHECK(nlohmann::json::parse(two.out).at("scored_tokens") == static_cast<int64_t>(ids.size()) - 2);
  const auto text_out = run_moat({"perplexity", "-m", kV3, "-f", text});
  CHECK(contains(text_out.out, "perplexity "));
  const auto missing = run_moat({"perplexity", "-m", kV3, "-f", "/nonexistent.txt"});
  CHECK(missing.exit_code == 2);
  CHECK(contains(missing.err, "/nonexistent.txt"));
}
