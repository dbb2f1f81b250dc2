// What `moat run` builds before it evaluates anything: the model, its tokenizer, the
// device, the kernel cache and a session whose context fits memory. Shared by the
// one-shot and the chat paths of cmd_run.cpp.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "backends/device.h"
#include "frontend/model.h"
#include "frontend/tokenizer/tokenizer.h"
#include "runtime/kernel_cache.h"
#include "runtime/generate.h"
#include "runtime/session.h"
#include "runtime/stage_link.h"
#include "samples/moat/args.h"
#include "samples/moat/progress.h"

namespace moat::cli {

struct RunSetup {
  // --mpi: the link to the other ranks (destroyed last: the session's passes use it).
  std::unique_ptr<runtime::StageLink> link;
  std::string mpi_mode;  // "pipeline" or "expert" with --mpi
  std::string model_path;
  std::unique_ptr<models::Model> model;  // of whichever family the file is (models::open_model)
  std::optional<tok::Tokenizer> tokenizer;  // absent only for --tokens prompts of a model without one
  // The devices the session runs on (--device A,B,..., --moe-device): the first is the
  // main one; several only with a placement (placement_options.h).
  std::vector<std::unique_ptr<backends::Device>> devices;
  std::unique_ptr<runtime::KernelCache> cache;
  std::unique_ptr<runtime::Session> session;
  ProgressBar progress;
  double load_ms = 0;  // model file to weights on the device
  // Set by the command before open_run: how a text prompt could do without a tokenizer
  // ("" when it cannot), and how tokens are chosen, for the stats line ("seed 42").
  std::string tokens_hint;
  std::string sampling_note;
  int64_t sequences = 1;  // the session's (moat serve --parallel); the context is per sequence
  // Tokens drafted per verification pass by the model's MTP layer (--spec mtp); 0: none.
  int64_t draft_tokens = 0;

  // "cpu" or "cpu+opencl:0" (with --mpi: "cpu, rank 0 of 2, --mpi pipeline"): the
  // devices' ids, for stats lines and reports.
  std::string device_label() const;
  // Whether this process reports (not a rank other than 0 of --mpi).
  bool reports() const { return !link || link->rank() == 0; }
  // With --mpi, the same value on every rank: rank 0's (a random seed).
  uint64_t agree(uint64_t value) const;
};

// Loads everything; prints the model's notes and the context chosen on stderr. The
// model is opened first, so a file that is not a model of a supported architecture is
// the first thing said. `need_tokenizer`: UserError when the model has none (with
// `setup.tokens_hint`). `check_before_load` (optional) runs once the model and its
// tokenizer are read, before the device is opened and kernels are compiled: for option
// checks that need them.
void open_run(const ParsedArgs& args, bool need_tokenizer, RunSetup& setup,
              const std::function<void(const RunSetup&)>& check_before_load = {});

// --cache-type (f32, f16, bf16, q8_0; default f16), --batch (the most tokens per pass) and
// --memory-budget (bytes, K, M or G; default: what the device has) as session options.
runtime::SessionOptions session_options(const ParsedArgs& args);
ir::DType cache_type_option(const ParsedArgs& args);
uint64_t memory_budget_option(const ParsedArgs& args);

// --spec: none, or mtp (the model's MTP layer drafts; llama.cpp's --spec-type draft-mtp
// too); UserError for another value and for --draft without it.
bool spec_option(const ParsedArgs& args);
// With --draft N (tokens per pass, default 1): the tokens drafted per verification
// pass, 0 without --spec.
int64_t draft_option(const ParsedArgs& args);
// --draft-model FILE: the file of the MTP layer where the model keeps it apart
// (llama.cpp's mtp-*.gguf beside a DeepSeek-V4 GGUF), "" without; UserError without --spec.
std::string draft_model_option(const ParsedArgs& args);

// The stop tokens of generation: the model's EOS.
std::vector<int32_t> stop_tokens(const RunSetup& setup);

// One line on stderr: load, compile (kernel cache), prompt and generation speed, device,
// and the sampling note (the seed that repeats the run).
void print_run_stats(const RunSetup& setup, const runtime::GenerationStats& stats);

}  // namespace moat::cli
