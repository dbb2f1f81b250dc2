// moat run: a model on a device. Today: a prompt of token ids, generation of token ids
// (greedy, or sampled: temperature, top-k, top-p, min-p, repetition penalty, seed; stops
// at -n or EOS), and the logits of every evaluated position (--logits-out). Text prompts,
// streaming text and chat are the rest of the text generation issue.
#include <chrono>
#include <cstdlib>
#include <iostream>

#include "backends/device.h"
#include "frontend/models/deepseek_weights.h"
#include "jit/kernel_cache.h"
#include "runtime/sampler.h"
#include "runtime/session.h"
#include "samples/moat/commands.h"
#include "support/error.h"
#include "support/npy.h"

namespace moat::cli {

namespace {

std::vector<int32_t> parse_tokens(const std::string& text) {
  std::vector<int32_t> out;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(start, end - start);
    char* rest = nullptr;
    const long long v = std::strtoll(item.c_str(), &rest, 10);
    if (item.empty() || *rest != '\0' || v < 0 || v > INT32_MAX)
      user_error("--tokens: '", item, "' is not a token id (give non-negative integers separated by commas)");
    out.push_back(static_cast<int32_t>(v));
    start = end + 1;
  }
  return out;
}

int run_model(const ParsedArgs& args) {
  if (args.has("-p") || args.has("-f") || args.has("--chat"))
    user_error("text prompts and --chat need the tokenizer, which arrives with the text generation issue; give --tokens ID,ID,...");
  if (!args.has("-m")) user_error("moat run needs -m MODEL (a GGUF file or a Hugging Face folder)");
  if (!args.has("--tokens")) user_error("moat run needs a prompt: --tokens ID,ID,...");
  runtime::SamplingOptions sampling;
  sampling.temperature = args.number("--temp", 0.0, 0.0, 1e6);
  sampling.top_k = args.integer("--top-k", 0, 0, 1 << 30);
  sampling.top_p = args.number("--top-p", 1.0, 0.0, 1.0);
  sampling.min_p = args.number("--min-p", 0.0, 0.0, 1.0);
  sampling.repeat_penalty = args.number("--repeat-penalty", 1.0, 0.0, 1e6);
  sampling.seed = static_cast<uint64_t>(args.integer("--seed", 0, 0, INT64_MAX));
  runtime::Sampler sampler(sampling);
  const std::vector<int32_t> prompt = parse_tokens(args.value("--tokens"));
  const int64_t n_gen = args.integer("-n", 0, 0, 1 << 20);
  const int64_t batch = args.integer("--batch", 512, 1, 1 << 20);

  const auto load_start = std::chrono::steady_clock::now();
  models::LoadOptions load;
  load.routing_method = args.value_or("--routing", "");
  const models::DeepSeekModel model = models::load_deepseek(args.value("-m"), load);
  for (const std::string& note : model.notes) std::cerr << "note: " << note << "\n";
  backends::CpuOptions cpu;
  cpu.threads = static_cast<int>(args.integer("-t", 0, 0, 1024));
  std::unique_ptr<backends::Device> device = backends::open_device(args.value_or("--device", "cpu"), cpu);
  jit::KernelCache cache(jit::default_kernel_cache_dir(std::getenv("MOAT_CACHE_DIR"), std::getenv("XDG_CACHE_HOME"),
                                                       std::getenv("HOME")));
  runtime::Session session(model, *device, cache, args.integer("--ctx", 0, 0, 1 << 30));
  const double load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - load_start).count();
  if (static_cast<int64_t>(prompt.size()) + n_gen > session.context())
    user_error("the prompt (", prompt.size(), " tokens) plus -n ", n_gen, " passes the context of ", session.context(),
               " tokens; shorten them or raise --ctx");

  const int64_t vocab = model.hparams.n_vocab;
  const auto run_start = std::chrono::steady_clock::now();
  std::vector<float> logits = session.evaluate(prompt, batch);
  std::vector<int32_t> generated, history(prompt);
  for (int64_t i = 0; i < n_gen; ++i) {
    std::span<const float> last(logits.data() + logits.size() - static_cast<size_t>(vocab), static_cast<size_t>(vocab));
    const int32_t next = sampler.sample(last, history);
    if (next == model.eos) break;  // end of sequence: not printed, not evaluated
    generated.push_back(next);
    history.push_back(next);
    std::vector<float> row = session.evaluate(std::span<const int32_t>(&generated.back(), 1), 1);
    logits.insert(logits.end(), row.begin(), row.end());
  }
  const double run_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - run_start).count();
  if (args.has("--logits-out")) {
    const int64_t rows = static_cast<int64_t>(logits.size()) / vocab;
    write_npy_f32(args.value("--logits-out"), {rows, vocab}, logits);
  }
  for (size_t i = 0; i < generated.size(); ++i) std::cout << (i ? " " : "") << generated[i];
  if (!generated.empty()) std::cout << "\n";
  std::cerr << "load " << static_cast<int64_t>(load_ms) << " ms, compile " << static_cast<int64_t>(session.stats().compile_ms)
            << " ms (" << cache.report() << "), " << prompt.size() + generated.size() << " tokens in "
            << static_cast<int64_t>(run_ms) << " ms on " << device->properties().info.id << "\n";
  return 0;
}

const Command kRun{
    {"run",
     "[-m MODEL] [--device ID] (-p TEXT | -f FILE | --tokens ID,ID,...) [-n N] [--ctx N] [--batch K] [--temp T] "
     "[--top-k K] [--top-p P] [--min-p P] [--repeat-penalty P] [--seed S] [-t N] [--logits-out FILE.npy] [--routing METHOD] [--chat]",
     "generate text (or logits) with a model on a device",
     {{"-m", "MODEL", "model file (GGUF) or Hugging Face folder"},
      {"--device", "ID", "cpu, opencl:N, cuda:N or hip:N"},
      {"-p", "TEXT", "prompt"},
      {"-f", "FILE", "read the prompt from FILE"},
      {"--tokens", "IDS", "prompt as comma-separated token ids"},
      {"-n", "N", "tokens to generate"},
      {"--ctx", "N", "context length"},
      {"--batch", "K", "prompt tokens per forward pass"},
      {"--temp", "T", "sampling temperature (0 = greedy)"},
      {"--top-k", "K", "keep the K most likely tokens"},
      {"--top-p", "P", "nucleus sampling threshold"},
      {"--min-p", "P", "minimum probability relative to the best token"},
      {"--seed", "S", "random seed"},
      {"-t", "N", "CPU threads"},
      {"--logits-out", "FILE", "write the logits as .npy"},
      {"--repeat-penalty", "P", "divide the logits of the last 64 tokens by P (1 = off)"},
      {"--routing", "METHOD", "expert routing of a GGUF model: greedy, group_limited_greedy or noaux_tc (default: inferred)"},
      {"--chat", "", "interactive chat with the model's template"}}},
    run_model};


}  // namespace

const Command& run_command() { return kRun; }

}  // namespace moat::cli
