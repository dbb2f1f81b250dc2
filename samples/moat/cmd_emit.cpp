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
#include "jit/emit_c.h"
#include "runtime/emit.h"
#include "jit/emit_ptx.h"
#include "jit/emit_spirv.h"
#include "jit/lower.h"
#include "jit/schedule.h"
#include "runtime/session.h"
#include "samples/moat/commands.h"
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

int run_emit(const ParsedArgs& args) {
  if (args.has("-m") == args.has("--graph")) user_error("moat emit needs one of -m MODEL or --graph FILE.mir (see moat emit --help)");
  const std::string target = args.value_or("--target", "llvm");
  if (target != "llvm" && target != "kir" && target != "opencl" && target != "hip" && target != "ptx" && target != "spirv")
    user_error("--target ", target, " is not one of llvm, kir, opencl, hip, ptx, spirv");
  const std::filesystem::path dir = args.value("-o");
  jit::PtxTarget ptx_target;
  if (target == "ptx") {
    const std::string arch = args.value_or("--arch", "sm_80");
    int sm = 0;
    try {
      if (arch.rfind("sm_", 0) == 0) sm = std::stoi(arch.substr(3));
    } catch (const std::exception&) {
      sm = 0;
    }
    if (sm <= 0) user_error("--arch ", arch, " is not an sm_XY name (e.g. --arch sm_90)");
    ptx_target = jit::ptx_target_for(sm);
  }

  // The graphs: the file's, or those a session runs for a model (a prompt of --sym T=N
  // tokens, 32 by default, then decode, over a cache of --sym C=N rows, the model's context by default).
  const ir::SymbolValues symbols = parse_symbols(args.value_or("--sym", ""));
  std::vector<ir::Graph> graphs;
  if (args.has("-m")) {
    const models::DeepSeekModel model = models::load_deepseek(args.value("-m"));
    const int64_t prompt = symbols.count("T") ? symbols.at("T") : 32;
    if (prompt < 1) user_error("--sym T=", prompt, ": the prompt needs at least one token");
    const int64_t context = symbols.count("C") ? symbols.at("C") : std::max<int64_t>(model.hparams.n_ctx_train, prompt + 1);
    if (context <= prompt) user_error("--sym C=", context, ": the cache needs more rows than the prompt's ", prompt, " tokens");
    graphs = runtime::session_graphs(model, prompt, context);
  } else {
    graphs.push_back(ir::parse_file(args.value("--graph")));
    for (const std::string& s : graphs[0].symbols)
      if (!symbols.count(s))
        user_error("graph ", graphs[0].name, " has the symbolic dimension ", s, ": give its value with --sym ", s, "=N");
  }

  // llvm / kir: scheduled for the host CPU; GPU targets: a GPU-style schedule of
  // 128 work-items per group.
  jit::Schedule schedule;
  backends::DeviceProperties host;  // llvm: the host CPU's ISA features (VNNI) as its kernels use them
  if (target == "llvm" || target == "kir") {
    host = backends::open_cpu_device({})->properties();
    schedule = jit::schedule_for(host);
  } else {
    schedule.gpu = true;
    schedule.work_group_size = 128;
    schedule.vector_lanes = 1;
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
    if (target == "kir") write_file(dir / (pk.kernel.name + ".kir"), jit::print(pk.kernel));
    else if (target == "opencl") write_file(dir / (pk.kernel.name + ".cl"), jit::emit_opencl(pk.kernel));
    else if (target == "hip") write_file(dir / (pk.kernel.name + ".hip"), jit::emit_hip(pk.kernel));
    else if (target == "ptx") write_file(dir / (pk.kernel.name + ".ptx"), jit::emit_ptx(pk.kernel, ptx_target));
    else if (target == "spirv") {
      const std::vector<uint8_t> spv = jit::emit_spirv(pk.kernel);
      write_file(dir / (pk.kernel.name + ".spv"), std::string(spv.begin(), spv.end()));
    }
    else write_file(dir / (pk.kernel.name + ".ll"), std::string(runtime::emit_for(host, pk.kernel, "cl").as_text()));
  }
  std::cout << "wrote " << written.size() << " " << target << " kernels (" << kernels.size() << " launches) to "
            << dir.string() << "\n";
  return 0;
}

const Command kEmit{
    {"emit", "(-m MODEL | --graph FILE.mir) [--sym NAME=N,...] --target llvm|kir|ptx|hip|opencl|spirv -o DIR",
     "write every kernel of a model or graph for a target",
     {{"-m", "MODEL", "model file or folder"},
      {"--graph", "FILE", "a Tensor IR graph (.mir)"},
      {"--sym", "NAME=N,...", "values of the graph's symbolic dimensions"},
      {"--target", "TARGET", "llvm (.ll), kir (Kernel IR text), ptx (.ptx), hip (.hip), opencl (.cl) or spirv (.spv)"},
      {"--arch", "sm_XY", "ptx: the GPU architecture (default sm_80)"},
      {"-o", "DIR", "output directory"}}},
    run_emit};

}  // namespace

const Command& emit_command() { return kEmit; }

}  // namespace moat::cli
