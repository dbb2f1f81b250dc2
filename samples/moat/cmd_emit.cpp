// moat emit: writes every distinct kernel of a graph for a target, one file per kernel
// (named by the kernel, whose name carries a hash of its Kernel IR), so a kernel can be
// read, diffed and fed to the target's own tools.
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>

#include "backends/device.h"
#include "frontend/models/deepseek_weights.h"
#include "ir/text.h"
#include "jit/lower.h"
#include "jit/schedule.h"
#include "jit/target.h"
#include "runtime/device_target.h"
#include "runtime/session.h"
#include "samples/moat/commands.h"
#include "samples/moat/run_setup.h"
#include "support/error.h"

namespace moat::cli {

namespace {

// "T=7,S=128" -> {T: 7, S: 128}
ir::SymbolValues parse_symbols(const std::string& text) {
  ir::SymbolValues out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find(',', start);
    if (end == std::string::npos) end = text.size();
    const std::string item = text.substr(start, end - start);
    const size_t eq = item.find('=');
    int64_t value = -1;
    try {
      if (eq != std::string::npos) value = std::stoll(item.substr(eq + 1));
    } catch (const std::exception&) {
      value = -1;
    }
    if (eq == std::string::npos || eq == 0 || value < 0)
      user_error("--sym: '", item, "' is not NAME=COUNT (e.g. --sym T=7,S=128)");
    out[item.substr(0, eq)] = value;
    start = end + 1;
  }
  return out;
}

void write_file(const std::filesystem::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary);
  out << text;
  if (!out) user_error("cannot write ", path.string(), ": check that the directory is writable");
}

// The target `name` names in the table (or its alias); nullptr for "kir", the Kernel IR
// stage (scheduled for the host CPU).
const jit::Target* target_of_option(const std::string& name) {
  if (name == "kir") return nullptr;
  if (const jit::Target* t = jit::find_target(name)) return t;
  user_error("--target ", name, " is not one of kir, ", jit::target_names());
}

int run_emit(const ParsedArgs& args) {
  if (args.has("-m") == args.has("--graph")) user_error("moat emit needs one of -m MODEL or --graph FILE.mir (see moat emit --help)");
  const std::string target_name = args.value_or("--target", "llvm");
  const jit::Target* target = target_of_option(target_name);
  const std::filesystem::path dir = args.value("-o");

  // The kernels are scheduled and printed for the host CPU's own capabilities (kir, and
  // the host's target without --arch), else for the table's record of --arch (the
  // target's default architecture without it): what a device of that kind would run.
  jit::Capabilities caps;
  const jit::Target* scheduled_for = target;
  if (!target || (!args.has("--arch") && target->backend == backends::describe_host_cpu().backend)) {
    const backends::DeviceProperties host = backends::open_cpu_device({})->properties();
    caps = runtime::capabilities_of(host);
    scheduled_for = &runtime::target_of(host);
  } else {
    caps = jit::capabilities_of(*target, args.value_or("--arch", std::string(target->default_arch)));
  }
  const jit::Schedule schedule = jit::schedule_for(*scheduled_for, caps);

  // The graphs: the file's, or those a session runs for a model (a prompt of --sym T=N
  // tokens, 32 by default, then decode, over a cache of --sym C=N rows, the model's context by default).
  const ir::SymbolValues symbols = parse_symbols(args.value_or("--sym", ""));
  std::vector<ir::Graph> graphs;
  if (args.has("-m")) {
    models::LoadOptions load;
    load.draft = spec_option(args);  // --spec mtp: the MTP layer's passes too
    load.draft_file = draft_model_option(args);
    const std::unique_ptr<models::Model> model = models::open_model(args.value("-m"), load);
    if (load.draft && !model->has_draft()) user_error("--spec mtp: ", model->why_no_draft());
    const int64_t prompt = symbols.count("T") ? symbols.at("T") : 32;
    if (prompt < 1) user_error("--sym T=", prompt, ": the prompt needs at least one token");
    const int64_t context = symbols.count("C") ? symbols.at("C") : std::max<int64_t>(model->training_context(), prompt + 1);
    if (context <= prompt) user_error("--sym C=", context, ": the cache needs more rows than the prompt's ", prompt, " tokens");
    graphs = runtime::session_graphs(*model, prompt, context);
  } else {
    graphs.push_back(ir::parse_file(args.value("--graph")));
    for (const std::string& s : graphs[0].symbols)
      if (!symbols.count(s))
        user_error("graph ", graphs[0].name, " has the symbolic dimension ", s, ": give its value with --sym ", s, "=N");
  }

  std::vector<jit::PlanKernel> kernels;
  for (const ir::Graph& graph : graphs) {
    jit::Plan plan = jit::lower(graph, symbols, schedule);
    for (jit::PlanKernel& pk : plan.kernels) kernels.push_back(std::move(pk));
  }

  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) user_error("-o ", dir.string(), ": cannot create the directory (", ec.message(), ")");
  std::set<std::string> written;
  for (const jit::PlanKernel& pk : kernels) {
    if (!written.insert(pk.kernel.name).second) continue;
    if (!target) write_file(dir / (pk.kernel.name + ".kir"), jit::print(pk.kernel));
    else write_file(dir / cat(pk.kernel.name, ".", target->extension), target->print(pk.kernel, caps));
  }
  std::cout << "wrote " << written.size() << " " << target_name << " kernels (" << kernels.size() << " launches) to "
            << dir.string() << "\n";
  return 0;
}

// The --target values, from the table.
const std::string kTargetHelp = cat("kir (Kernel IR text) or a target: ", jit::target_names());

const Command kEmit{
    {"emit", "(-m MODEL | --graph FILE.mir) [--sym NAME=N,...] --target TARGET [--arch ARCH] [--spec mtp [--draft-model FILE]] -o DIR",
     "write every kernel of a model or graph for a target",
     {{"-m", "MODEL", "model file or folder"},
      {"--graph", "FILE", "a Tensor IR graph (.mir)"},
      {"--sym", "NAME=N,...", "values of the graph's symbolic dimensions"},
      {"--target", "TARGET", kTargetHelp},
      {"--arch", "ARCH", "the target's architecture (ptx: sm_80, sm_90, ...; hip: gfx90a, gfx1030, ...); default: the host CPU for llvm, else the target's first"},
      {"--spec", "mtp", "with -m: also the passes of speculative decoding with the model's MTP layer"},
      {"--draft-model", "FILE", "with --spec mtp: the MTP layer's own file (llama.cpp's mtp-*.gguf beside a DeepSeek-V4 GGUF)"},
      {"-o", "DIR", "output directory"}}},
    run_emit};

}  // namespace

const Command& emit_command() { return kEmit; }

}  // namespace moat::cli
