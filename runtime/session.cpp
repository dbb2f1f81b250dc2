#include "runtime/session.h"

#include <algorithm>
#include <chrono>

#include "frontend/models/deepseek.h"
#include "jit/lower.h"
#include "jit/schedule.h"
#include "runtime/executor.h"
#include "support/error.h"

namespace moat::runtime {

Session::Session(const models::DeepSeekModel& model, backends::Device& device, jit::KernelCache& cache, int64_t context)
    : model_(model), device_(device), cache_(cache) {
  context_ = context > 0 ? context : std::max<int64_t>(model.hparams.n_ctx_train, 1);
  latent_.resize(static_cast<size_t>(model.hparams.n_layer));
  // Weights go to the device once (zero-copy where it shares host memory).
  for (const auto& [name, tensor] : model.weights) {
    weight_buffers_.push_back(device.wrap_host(tensor.bytes().data(), tensor.bytes().size()));
    resident_[name] = weight_buffers_.back().get();
  }
}

Session::~Session() = default;

uint64_t Session::cache_bytes_per_token() const {
  return static_cast<uint64_t>(model_.hparams.latent_width() * model_.hparams.n_layer) * sizeof(float);
}

std::vector<float> Session::evaluate(std::span<const int32_t> tokens, int64_t batch) {
  if (batch < 1) user_error("--batch must be at least 1, got ", batch);
  if (cached_ + static_cast<int64_t>(tokens.size()) > context_)
    user_error(cached_, " cached + ", tokens.size(), " new tokens pass the context of ", context_,
               " tokens; shorten the prompt or -n, or raise --ctx");
  for (int32_t t : tokens)
    if (t < 0 || t >= model_.hparams.n_vocab)
      user_error("token id ", t, " is outside the vocabulary of ", model_.hparams.n_vocab, " tokens");
  std::vector<float> logits;
  for (size_t start = 0; start < tokens.size(); start += static_cast<size_t>(batch)) {
    const size_t n = std::min<size_t>(static_cast<size_t>(batch), tokens.size() - start);
    std::vector<float> rows = forward(tokens.subspan(start, n));
    logits.insert(logits.end(), rows.begin(), rows.end());
  }
  return logits;
}

std::vector<ir::Graph> session_graphs(const models::DeepSeekModel& model, int64_t prompt_tokens) {
  const int64_t window = (prompt_tokens + 1 + kCacheWindowStep - 1) / kCacheWindowStep * kCacheWindowStep;
  return {models::build_deepseek_graph(model, prompt_tokens, 0, models::AttentionForm::expanded),
          models::build_deepseek_graph(model, 1, window, models::AttentionForm::absorbed)};
}

std::vector<float> Session::forward(std::span<const int32_t> tokens) {
  const models::DeepSeekHParams& h = model_.hparams;
  const int64_t T = static_cast<int64_t>(tokens.size()), P = cached_, W = h.latent_width();
  const bool with_past = P > 0;
  const int64_t window = with_past ? (P + T + kCacheWindowStep - 1) / kCacheWindowStep * kCacheWindowStep : 0;
  const auto key = std::make_pair(T, window);
  auto plan = plans_.find(key);
  if (plan == plans_.end()) {
    const auto start = std::chrono::steady_clock::now();
    ir::Graph graph = models::build_deepseek_graph(model_, T, window,
                                                   with_past ? models::AttentionForm::absorbed : models::AttentionForm::expanded);
    auto exec = std::make_unique<Executor>(device_, cache_, jit::lower(graph, {}, jit::schedule_for(device_.properties())));
    plan = plans_.emplace(key, std::move(exec)).first;
    stats_.compile_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    ++stats_.plans;
  }

  ir::Bindings bindings;
  std::vector<int64_t> ids(tokens.begin(), tokens.end()), positions(static_cast<size_t>(T));
  for (int64_t i = 0; i < T; ++i) positions[static_cast<size_t>(i)] = P + i;
  bindings.tensors["tokens"] = ir::HostTensor::from_i64({T}, ids, ir::DType::i32);
  bindings.tensors["positions"] = ir::HostTensor::from_i64({T}, positions, ir::DType::i32);
  if (with_past) {
    bindings.tensors["past"] = ir::HostTensor::from_i64({1}, std::vector<int64_t>{P}, ir::DType::i32);
    for (int64_t l = 0; l < h.n_layer; ++l) {
      std::vector<float>& rows = latent_[static_cast<size_t>(l)];
      rows.resize(static_cast<size_t>(std::max<int64_t>(static_cast<int64_t>(rows.size()), window * W)));  // zeros past P
      bindings.tensors["cache." + std::to_string(l)] = ir::HostTensor::borrowed(
          ir::DType::f32, {window, W}, {reinterpret_cast<const uint8_t*>(rows.data()), static_cast<size_t>(window * W) * sizeof(float)});
    }
  }
  std::vector<ir::HostTensor> out = plan->second->run(bindings, &resident_);
  for (int64_t l = 0; l < h.n_layer; ++l) {
    std::vector<float> fresh = out[static_cast<size_t>(1 + l)].to_f32();
    auto& rows = latent_[static_cast<size_t>(l)];
    rows.resize(static_cast<size_t>(std::max<int64_t>(static_cast<int64_t>(rows.size()), (P + T) * W)));
    std::copy(fresh.begin(), fresh.end(), rows.begin() + P * W);
  }
  cached_ += T;
  return out[0].to_f32();
}

}  // namespace moat::runtime
