#include "samples/moat/run_setup.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>

#include "cluster/mpi_link.h"
#include "runtime/context.h"
#include "samples/moat/demo_model.h"
#include "samples/moat/placement_options.h"
#include "support/error.h"
#include "support/memory.h"
#include "support/strings.h"

namespace moat::cli {

namespace {

// A tokenizer for the model, or nullopt with the reason when the file has none.
std::optional<tok::Tokenizer> try_tokenizer(const std::string& path, std::string& why) {
  try {
    return tok::Tokenizer::open(path);
  } catch (const UserError& e) {
    why = e.what();
    return std::nullopt;
  }
}

double tokens_per_second(int64_t tokens, double ms) { return ms > 0 ? 1000.0 * static_cast<double>(tokens) / ms : 0; }

}  // namespace

void open_run(const ParsedArgs& args, bool need_tokenizer, RunSetup& setup,
              const std::function<void(const RunSetup&)>& check_before_load) {
  setup.model_path = args.has("-m") ? args.value("-m") : demo_model_path();
  const auto start = std::chrono::steady_clock::now();
  // The model first: a file that cannot be read, is not a model or is of another
  // architecture says so before anything else is said about it. (GGUF and
  // safetensors weights are mapped, not read, so this is cheap.)
  models::LoadOptions load;
  load.routing_method = args.value_or("--routing", "");
  load.draft = setup.draft_tokens > 0;
  load.draft_file = draft_model_option(args);
  setup.model = models::open_model(setup.model_path, load);
  std::string why;
  setup.tokenizer = try_tokenizer(setup.model_path, why);
  if (!setup.tokenizer && need_tokenizer)
    user_error("text needs the model's tokenizer, which ", setup.model_path, " lacks (", why, ")",
               setup.tokens_hint.empty() ? "" : "; ", setup.tokens_hint);
  if (check_before_load) check_before_load(setup);
  for (const std::string& note : setup.model->load_notes()) std::cerr << "note: " << note << "\n";
  if (setup.tokenizer && setup.tokenizer->vocab_size() > static_cast<size_t>(setup.model->vocab_size()))
    user_error(setup.model_path, ": the tokenizer has ", setup.tokenizer->vocab_size(), " tokens but the model only ",
               setup.model->vocab_size(), "; the file is inconsistent");

  backends::CpuOptions cpu;
  cpu.threads = static_cast<int>(args.integer("-t", 0, 0, 1024));
  DevicePlacement placement;
  std::vector<backends::Device*> devices;
  if (args.has("--mpi")) {
    if (setup.sequences > 1 || setup.draft_tokens > 0) user_error("--mpi runs one sequence without --spec");
    RankPlacement ranks = start_ranks(args, setup.model->layers(), cpu);
    devices = ranks.session_devices();
    setup.link = std::move(ranks.link);
    setup.mpi_mode = ranks.mode;
    setup.devices.push_back(std::move(ranks.device));
    placement = std::move(ranks.placement);
  } else {
    placement = placement_options(args, setup.model->layers());
    for (const std::string& id : placement.ids) setup.devices.push_back(backends::open_device(id, cpu));
    for (const auto& d : setup.devices) devices.push_back(d.get());
  }
  for (const auto& device : setup.devices)
    if (const int cpus = device->properties().info.threads; cpus > 0 && cpu.threads > cpus)  // a host-thread device
      std::cerr << "moat: warning: -t " << cpu.threads << " is more than the CPUs this process may run on (" << cpus
                << "); threads beyond that share CPUs and slow each other down\n";
  setup.cache = std::make_unique<runtime::KernelCache>(runtime::default_kernel_cache_dir(
      std::getenv("MOAT_CACHE_DIR"), std::getenv("XDG_CACHE_HOME"), std::getenv("HOME")));

  runtime::SessionOptions options = session_options(args);
  options.sequences = setup.sequences;
  options.draft = setup.draft_tokens > 0;
  std::vector<models::CachePart> layout = setup.model->cache_layout();
  if (options.draft)
    for (const models::CachePart& part : setup.model->draft_cache_layout()) layout.push_back(part);
  const runtime::ContextChoice context = runtime::choose_context(
      args.integer("--ctx", 0, 0, 1 << 30), setup.model->training_context(),
      [&](int64_t tokens) {
        return models::cache_bytes(layout, options.cache_dtype, tokens) * static_cast<uint64_t>(setup.sequences);
      },
      available_host_memory());
  if (!context.warning.empty()) std::cerr << "moat: warning: " << context.warning << "\n";
  // --mpi: every rank's passes must match, so every rank takes rank 0's context (each
  // chose by its own free memory)
  options.context = static_cast<int64_t>(setup.agree(static_cast<uint64_t>(context.tokens)));
  options.progress = [&setup](const char* stage, int64_t done, int64_t total) { setup.progress.update(stage, done, total); };
  options.placement = placement.spec;
  options.link = setup.link.get();
  if (setup.mpi_mode == "expert") options.across = runtime::SessionOptions::Across::expert;
  if (!setup.reports()) options.progress = nullptr;
  setup.session = std::make_unique<runtime::Session>(*setup.model, devices, *setup.cache, options);
  setup.progress.clear();
  setup.load_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (!setup.reports()) return;
  std::cerr << "moat: " << setup.model_path << " on " << setup.device_label() << ", " << context.report << "\n";
  if (setup.session->device_shares().size() > 1) std::cerr << "moat: " << placement_report(*setup.session) << "\n";
}

uint64_t RunSetup::agree(uint64_t value) const {
  if (!link || link->ranks() == 1) return value;
  uint8_t bytes[sizeof value];
  std::memcpy(bytes, &value, sizeof value);
  constexpr int kTag = 1 << 21;  // apart from the passes' node ids
  if (link->rank() == 0)
    for (int r = 1; r < link->ranks(); ++r) link->send(r, kTag, bytes);
  else
    link->receive(0, kTag, bytes);
  std::memcpy(&value, bytes, sizeof value);
  return value;
}

std::string RunSetup::device_label() const {
  std::vector<std::string> ids;
  for (const auto& d : devices) ids.push_back(d->properties().info.id);
  if (link) return cat(join(ids, "+"), ", rank ", link->rank(), " of ", link->ranks(), ", --mpi ", mpi_mode);
  return join(ids, "+");
}

ir::DType cache_type_option(const ParsedArgs& args) {
  const std::string name = args.value_or("--cache-type", "f16");
  if (name == "f32") return ir::DType::f32;
  if (name == "f16") return ir::DType::f16;
  if (name == "bf16") return ir::DType::bf16;
  if (name == "q8_0") return ir::DType::q8_0;
  user_error("--cache-type ", name, ": the latent cache can be f32, f16 (the default), bf16 or q8_0");
}

uint64_t memory_budget_option(const ParsedArgs& args) {
  if (!args.has("--memory-budget")) return 0;
  const std::string text = args.value("--memory-budget");
  char* end = nullptr;
  errno = 0;
  const double value = std::strtod(text.c_str(), &end);
  const std::string unit = end ? std::string(end) : "";
  const double scale = unit.empty() || unit == "B" ? 1.0 : unit == "K" || unit == "KiB" ? 1024.0
                       : unit == "M" || unit == "MiB" ? 1024.0 * 1024 : unit == "G" || unit == "GiB" ? 1024.0 * 1024 * 1024 : -1;
  if (text.empty() || errno != 0 || !(value > 0) || scale < 0 || value * scale > 1e18)
    user_error("--memory-budget ", text, ": give a size such as 512M or 6G (bytes, K, M or G)");
  return static_cast<uint64_t>(value * scale);
}

bool spec_option(const ParsedArgs& args) {
  std::string spec = args.value_or("--spec", "none");
  if (spec == "draft-mtp") spec = "mtp";  // llama.cpp's --spec-type value
  if (spec != "none" && spec != "mtp")
    user_error("--spec ", spec, ": the only draft is mtp (the model's own multi-token-prediction layer), or none");
  if (spec == "none" && args.has("--draft")) user_error("--draft sets how many tokens --spec mtp drafts; give --spec mtp too");
  return spec == "mtp";
}

std::string draft_model_option(const ParsedArgs& args) {
  if (args.has("--draft-model") && !spec_option(args))
    user_error("--draft-model names the file of the MTP layer that --spec mtp drafts with; give --spec mtp too");
  return args.value_or("--draft-model", "");
}

int64_t draft_option(const ParsedArgs& args) { return spec_option(args) ? args.integer("--draft", 1, 1, 16) : 0; }

runtime::SessionOptions session_options(const ParsedArgs& args) {
  runtime::SessionOptions options;
  options.cache_dtype = cache_type_option(args);
  options.max_batch = args.integer("--batch", 512, 1, 1 << 20);
  options.memory_budget = memory_budget_option(args);
  return options;
}

std::vector<int32_t> stop_tokens(const RunSetup& setup) {
  std::vector<int32_t> stops;
  if (setup.model->eos_token() >= 0) stops.push_back(setup.model->eos_token());
  if (setup.tokenizer && setup.tokenizer->eos() >= 0 && setup.tokenizer->eos() != setup.model->eos_token())
    stops.push_back(setup.tokenizer->eos());
  return stops;
}

void print_run_stats(const RunSetup& setup, const runtime::GenerationStats& stats) {
  const std::string devices = setup.device_label();
  char line[512];
  std::snprintf(line, sizeof line,
                "load %.0f ms | compile %.0f ms | prompt %lld tokens, %.1f tokens/s | generation %lld tokens, %.1f "
                "tokens/s | %s%s%s",
                setup.load_ms + setup.session->stats().pack_ms, setup.session->stats().compile_ms, static_cast<long long>(stats.prompt_tokens),
                tokens_per_second(stats.prompt_tokens, stats.prompt_ms), static_cast<long long>(stats.generated_tokens),
                tokens_per_second(stats.generated_tokens, stats.generate_ms), devices.c_str(),
                setup.sampling_note.empty() ? "" : " | ", setup.sampling_note.c_str());
  char speculation[128] = "";
  if (setup.draft_tokens > 0)
    std::snprintf(speculation, sizeof speculation, " | mtp draft %lld: acceptance %.1f%% | accepted %.2f per pass",
                  static_cast<long long>(setup.draft_tokens), 100.0 * stats.acceptance(), stats.accepted_per_pass());
  std::cerr << "moat: " << line << speculation << "\nmoat: " << setup.cache->report() << "\n";
}

}  // namespace moat::cli
