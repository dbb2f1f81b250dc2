// DeepSeek-V4's forward over a whole sequence (frontend/models/deepseek4.h) against the
// tiny golden made with transformers' own DeepseekV4ForCausalLM (tools/make_v4_golden.py):
// 320 tokens, so both 128-token blocks of the HCA layer close, the CSA layers' indexer
// keeps 8 of up to 80 blocks, the 16-token window slides, the first layer is hash-routed.
#include <doctest/doctest.h>

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

#include "backends/registry.h"
#include "frontend/hf_config_v4.h"
#include "frontend/models/deepseek4.h"
#include "ir/interpreter.h"
#include "jit/lower.h"
#include "runtime/device_target.h"
#include "runtime/executor.h"
#include "runtime/kernel_cache.h"
#include "support/npy.h"
#include "tests/models/logits_match.h"
#include "tests/runtime/demo_session.h"

using namespace moat;

namespace {

const std::string kDir = MOAT_SOURCE_DIR "/tests/data/goldens/v4/";

struct Golden {
  models::DeepSeekV4HParams h;
  models::DeepSeekV4Weights w;
  std::vector<int64_t> tokens;
  ir::Graph graph;
  ir::Bindings bindings;
};

const NpyF32& logits() {
  static const NpyF32 want = read_npy_f32(kDir + "logits.npy");
  return want;
}

const Golden& golden() {
  static const Golden g = [] {
    Golden out;
    out.h = models::hparams_from_hf_v4(hf::load_deepseek_v4_config(kDir));
    out.w = models::load_deepseek4_hf_weights(kDir, out.h);
    std::ifstream in(kDir + "tokens.json");
    out.tokens = nlohmann::json::parse(in).get<std::vector<int64_t>>();
    const auto t = static_cast<int64_t>(out.tokens.size());
    out.graph = models::deepseek4_sequence_graph(out.h, out.w, t);
    out.bindings.tensors.emplace("tokens", ir::HostTensor::from_i64({t}, out.tokens, ir::DType::i32));
    for (const auto& [name, tensor] : out.w.tensors) out.bindings.tensors.emplace(name, tensor);
    return out;
  }();
  return g;
}

}  // namespace

TEST_CASE("DeepSeek-V4 golden: one pass over 320 tokens gives transformers' logits (interpreter)") {
  testing::expect_matches(ir::interpret(golden().graph, golden().bindings).at(0).to_f32(), logits(), 1e-4, "interpreter");
}

TEST_CASE("DeepSeek-V4 golden: one pass over 320 tokens gives transformers' logits on every device") {
  for (const std::string& id : testing::session_device_ids()) {
    INFO(id);
    auto device = backends::open_device(id, {.threads = 2});
    runtime::KernelCache cache{{}};
    runtime::Executor executor(*device, cache, jit::lower(golden().graph, {}, runtime::schedule_for(device->properties())));
    testing::expect_matches(executor.run(golden().bindings).at(0).to_f32(), logits(), 1e-4, id);
  }
}
