#include "samples/moat/llama_options.h"

#include <algorithm>
#include <utility>

namespace moat::cli {

namespace {

struct Alias {
  std::string_view llama_name;  // as llama.cpp spells it
  std::string_view moat_name;   // the moat option it stands for
  std::string_view command;     // the one command it applies to; "" : every command offering moat_name
};

// llama.cpp's spellings of options moat has (common/arg.cpp, tools/llama-bench). A
// name may stand for different options on different commands only if no command
// offers both targets.
constexpr Alias kAliases[] = {
    {"--model", "-m"},
    {"--prompt", "-p"},
    {"--file", "-f"},
    {"--n-predict", "-n"},
    {"--predict", "-n"},
    {"-c", "--ctx"},
    {"--ctx-size", "--ctx"},
    {"-b", "--batch"},
    {"--batch-size", "--batch"},
    {"-ub", "--batch"},
    {"--ubatch-size", "--batch"},
    {"-s", "--seed"},
    {"--threads", "-t"},
    {"-tb", "-t"},
    {"--threads-batch", "-t"},
    {"-dev", "--device"},
    {"-ctk", "--cache-type"},
    {"--cache-type-k", "--cache-type"},
    {"--repetitions", "-r"},
    {"--output", "-o"},
    {"--n-prompt", "-p", "bench"},  // llama-bench's; llama-cli's -p is the prompt text
    {"--n-gen", "-n"},
    {"--n-depth", "-d"},
    {"-i", "--chat"},
    {"--interactive", "--chat"},
    {"-cnv", "--chat"},
    {"--conversation", "--chat"},
    {"-sys", "--system"},
    {"--system-prompt", "--system"},
    {"-np", "--parallel"},  // llama-server's slots; llama-batched-bench's -npl is a list
    {"--n-parallel", "--parallel"},
    {"-npl", "--parallel", "bench"},
    {"-a", "--alias"},
    {"--spec-type", "--spec"},  // llama.cpp's draft-mtp is moat's mtp (run_setup.h)
    {"--spec-draft-n-max", "--draft"},
    {"-md", "--draft-model"},  // llama.cpp's draft model; for draft-mtp, V4's mtp-*.gguf
    {"--spec-draft-model", "--draft-model"},
    {"--model-draft", "--draft-model"},
};

struct Missing {
  std::string_view llama_name;
  std::string_view why;  // what moat does instead
};

constexpr Missing kMissing[] = {
    {"-ngl", "moat places whole layers: list the devices with --device (e.g. --device cuda:0,cpu) and their shares with --split layers:R1,R2"},
    {"--gpu-layers", "moat places whole layers: list the devices with --device (e.g. --device cuda:0,cpu) and their shares with --split layers:R1,R2"},
    {"--n-gpu-layers", "moat places whole layers: list the devices with --device (e.g. --device cuda:0,cpu) and their shares with --split layers:R1,R2"},
    {"-ot", "moat places layers (--device A,B --split layers:R1,R2) and routed experts (--moe-device ID, --n-moe-device N), not single tensors"},
    {"--override-tensor", "moat places layers (--device A,B --split layers:R1,R2) and routed experts (--moe-device ID, --n-moe-device N), not single tensors"},
    {"--cpu-moe", "put the routed experts on the CPU with --moe-device cpu"},
    {"--n-cpu-moe", "put the first N layers' routed experts on the CPU with --moe-device cpu --n-moe-device N"},
    {"-ctv", "MLA keeps one latent cache (keys and values together): its type is --cache-type"},
    {"--cache-type-v", "MLA keeps one latent cache (keys and values together): its type is --cache-type"},
    {"-fa", "attention always streams over the cache (online softmax), which is what flash attention does; nothing to turn on"},
    {"--flash-attn", "attention always streams over the cache (online softmax), which is what flash attention does; nothing to turn on"},
    {"--prompt-cache", "moat keeps no prompt cache on disk; the kernel cache is kept (MOAT_CACHE_DIR)"},
    {"--prompt-cache-all", "moat keeps no prompt cache on disk; the kernel cache is kept (MOAT_CACHE_DIR)"},
    {"--grammar", "constrained sampling (grammars, JSON schemas) is not supported"},
    {"--grammar-file", "constrained sampling (grammars, JSON schemas) is not supported"},
    {"-j", "constrained sampling (grammars, JSON schemas) is not supported"},
    {"--json-schema", "constrained sampling (grammars, JSON schemas) is not supported"},
    {"--lora", "LoRA adapters are not supported"},
    {"--mlock", "weights are memory-mapped and copied to the device as the device needs; there is no mlock"},
    {"--no-mmap", "GGUF files are always memory-mapped"},
    {"-r", "moat stops at the model's end-of-sequence token or after -n tokens; there are no reverse prompts"},
    {"--reverse-prompt", "moat stops at the model's end-of-sequence token or after -n tokens; there are no reverse prompts"},
    {"--mirostat", "the samplers are temperature, top-k, top-p, min-p and the repetition, presence and frequency penalties"},
    {"--typical", "the samplers are temperature, top-k, top-p, min-p and the repetition, presence and frequency penalties"},
    {"--dry-multiplier", "the samplers are temperature, top-k, top-p, min-p and the repetition, presence and frequency penalties"},
    {"--xtc-probability", "the samplers are temperature, top-k, top-p, min-p and the repetition, presence and frequency penalties"},
    {"--jinja", "chat templates are recognised by their text (DeepSeek formats); choose one with --chat-template"},
    {"-hf", "moat reads local files only: download the GGUF or Hugging Face folder and give it with -m"},
    {"--hf-repo", "moat reads local files only: download the GGUF or Hugging Face folder and give it with -m"},
    {"-sm", "moat splits by layers: --device A,B --split layers (there is no row split)"},
    {"--split-mode", "moat splits by layers: --device A,B --split layers (there is no row split)"},
    {"-ts", "give each device's share of the layers with --split layers:R1,R2 (and --device A,B)"},
    {"--tensor-split", "give each device's share of the layers with --split layers:R1,R2 (and --device A,B)"},
    {"--numa", "moat does not place memory per NUMA node"},
    {"-np", "one process serves one sequence; there are no parallel slots"},
    {"--parallel", "one process serves one sequence; there are no parallel slots"},
};

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      const size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = above;
    }
  }
  return row[b.size()];
}

bool is_offered(std::string_view option, const std::vector<std::string_view>& offered) {
  return std::find(offered.begin(), offered.end(), option) != offered.end();
}

bool applies(const Alias& a, std::string_view command, const std::vector<std::string_view>& offered) {
  return (a.command.empty() || a.command == command) && is_offered(a.moat_name, offered);
}

}  // namespace

std::optional<std::string_view> llama_alias_target(std::string_view name, std::string_view command,
                                                   const std::vector<std::string_view>& offered) {
  for (const Alias& a : kAliases)
    if (a.llama_name == name && applies(a, command, offered)) return a.moat_name;
  return std::nullopt;
}

std::vector<std::string_view> llama_aliases_of(std::string_view option, std::string_view command) {
  std::vector<std::string_view> names;
  for (const Alias& a : kAliases)
    if (a.moat_name == option && (a.command.empty() || a.command == command)) names.push_back(a.llama_name);
  return names;
}

std::optional<std::string_view> llama_option_missing(std::string_view name) {
  for (const Missing& m : kMissing)
    if (m.llama_name == name) return m.why;
  return std::nullopt;
}

std::string nearest_option(std::string_view name, std::string_view command, const std::vector<std::string_view>& offered) {
  std::vector<std::string_view> candidates = offered;
  for (const Alias& a : kAliases)
    if (applies(a, command, offered)) candidates.push_back(a.llama_name);
  const auto bare = [](std::string_view s) { return s.substr(std::min(s.find_first_not_of('-'), s.size())); };
  std::string_view best;
  size_t best_distance = SIZE_MAX;
  for (std::string_view c : candidates) {
    const size_t d = edit_distance(bare(name), bare(c));
    if (d < best_distance) best_distance = d, best = c;
  }
  // a typo: at most a third of the name's letters wrong (and at least one allowed)
  const size_t allowed = std::max<size_t>(1, bare(name).size() / 3);
  if (best_distance <= allowed) return std::string(best);
  // a longer spelling of an option ("--temperature" for "--temp"): the longest offered prefix of 3+ letters
  best = {};
  for (std::string_view c : candidates)
    if (bare(c).size() >= 3 && bare(name).starts_with(bare(c)) && bare(c).size() > bare(best).size()) best = c;
  return std::string(best);
}

}  // namespace moat::cli
