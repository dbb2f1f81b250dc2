// Every target of the table (jit/target.h) checked by its own tools on the kernels its
// real default schedule produces: for each validated architecture, the schedule is
// jit::schedule_for(target, the table's capabilities of that architecture) — what a
// device of that kind runs (e.g. 256 work-items per group on CUDA and HIP). The kernels
// are every distinct kernel of the conformance case families and of the golden DeepSeek
// models; GPU targets also get a sample of CPU-schedule kernels (vectors), which reach
// them only through the scalarize legalisation.
//
// Validators, by artifact format: LLVM IR by LLVM's verifier, SPIR-V by SPIRV-Tools'
// validator (OpenCL 1.2 environment), OpenCL C by building it on the first OpenCL
// device, HIP C++ by hiprtc for gfx90a and gfx1030, PTX by ptxas for sm_80 and sm_90.
// A target without one says why (kNotValidated); each check skips, saying why, only
// where its tool or device is absent.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <iostream>
#include <map>
#include <set>
#include <sstream>

#include "backends/cpu/llvm_verify.h"
#include "backends/cuda/ptx_check.h"
#include "backends/hip/hip_compile.h"
#include "frontend/models/deepseek4_model.h"
#include "frontend/models/deepseek_weights.h"
#include "jit/emit_c.h"
#include "jit/emit_llvm.h"
#include "jit/emit_ptx.h"
#include "jit/kir_visitor.h"
#include "jit/legalize.h"
#include "jit/target.h"
#include "runtime/session.h"
#include "support/error.h"
#include "tests/jit/conformance_cases.h"
#include "tests/jit/table_kernel.h"

#ifdef MOAT_HAVE_SPIRV_TOOLS
#include <spirv-tools/libspirv.h>
#endif

using moat::testing::BackendUnderTest;
namespace cases = moat::testing::cases;
namespace jit = moat::jit;

namespace {

using Kernels = std::vector<jit::Kernel>;

// A schedule's fields as text: kernels are collected once per distinct schedule.
std::string schedule_key(const jit::Schedule& s) {
  return moat::cat(s.gpu, "/", s.vector_lanes, "/", s.work_group_size, "/", s.elements_per_group, "/", s.matmul_rows, "/",
                   s.matmul_cols, "/", s.local_memory_bytes, "/", s.sub_group_size, "/", s.int8_dot);
}

// The distinct kernels of every conformance case under `schedule`.
struct CaseKernels {
  Kernels kernels;
  std::set<std::string> packed;  // names of those that read packed weights (CPU-only kernels)
};

const CaseKernels& collect_case_kernels(const jit::Schedule& schedule) {
  static std::map<std::string, CaseKernels> memo;
  auto [it, fresh] = memo.try_emplace(schedule_key(schedule));
  if (fresh) {
    BackendUnderTest c(schedule);
    for (auto fn : {cases::unary, cases::binary, cases::select, cases::cast, cases::reduce, cases::matmul_float,
                    cases::matmul_quantised, cases::matmul_fp8, cases::gather, cases::topk, cases::views, cases::sources,
                    cases::symbolic, cases::composites})
      fn(c);
    it->second = {std::move(c.collected), std::move(c.packed_names)};
  }
  return it->second;
}

const Kernels& case_kernels(const jit::Schedule& schedule) { return collect_case_kernels(schedule).kernels; }

// Every distinct kernel a session compiles for the golden DeepSeek models (a 48-token
// prompt, then decode; DeepSeek-V4 also its whole-sequence pass), under `schedule`.
const Kernels& golden_kernels(const jit::Schedule& schedule) {
  static std::map<std::string, Kernels> memo;
  auto [it, fresh] = memo.try_emplace(schedule_key(schedule));
  if (fresh) {
    std::set<std::string> names;
    const std::string dir = std::string(MOAT_SOURCE_DIR) + "/tests/data/goldens/";
    moat::models::LoadOptions drafting;
    drafting.draft = true;  // the MTP layer's passes (v3_mtp)
    for (const char* model : {"v3", "v3/model-q8_0.gguf", "v3_fp8", "v2_lite/model-bf16.gguf", "v2", "v3_mtp", "v32"}) {
      const moat::models::DeepSeekModel m = moat::models::load_deepseek(dir + model, drafting);
      for (const moat::ir::Graph& g : moat::runtime::session_graphs(m, 48, 64))
        for (jit::PlanKernel& pk : jit::lower(g, {}, schedule).kernels)
          if (names.insert(pk.kernel.name).second) it->second.push_back(std::move(pk.kernel));
    }
    // DeepSeek-V4: a session's passes over its cache (48-token prompt, decode; context
    // 320), its pass over the golden's whole sequence (320 tokens), and a session of 4
    // sequences' passes (a 48-token prompt of one, a decode step of all four)
    const std::unique_ptr<moat::models::Model> v4 = moat::models::open_model(dir + "v4");
    std::vector<moat::ir::Graph> v4_graphs = moat::runtime::session_graphs(*v4, 48, 320);
    const auto& v4_model = dynamic_cast<const moat::models::DeepSeekV4Model&>(*v4);
    v4_graphs.push_back(moat::models::deepseek4_sequence_graph(v4_model.hparams, v4_model.weights, 320));
    for (const auto& [tokens, one_sequence] : {std::pair<int64_t, bool>{48, true}, {4, false}}) {
      moat::models::PassSpec batched{tokens, false, moat::models::LogitRows::all, 4 * 320};
      batched.batched = true;
      batched.sequences = 4;
      batched.one_sequence = one_sequence;
      v4_graphs.push_back(v4->pass_graph(batched));
    }
    for (const moat::ir::Graph& g : v4_graphs)
      for (jit::PlanKernel& pk : jit::lower(g, {}, schedule).kernels)
        if (names.insert(pk.kernel.name).second) it->second.push_back(std::move(pk.kernel));
  }
  return it->second;
}

// The schedule of the CPU target's default architecture: where the sample of vector
// kernels for the GPU targets comes from.
jit::Schedule cpu_schedule() {
  for (const jit::Target& t : jit::targets())
    if (!t.schedule.gpu) return jit::schedule_for(t, jit::capabilities_of(t));
  FAIL("no CPU target in the table");
  return {};
}

// The kernels to validate for `target` on an architecture with `caps`: those of its
// default schedule, and for GPU targets every 8th CPU-schedule kernel.
Kernels kernels_for(const jit::Target& target, const jit::Capabilities& caps, bool goldens) {
  const jit::Schedule schedule = jit::schedule_for(target, caps);
  Kernels out = goldens ? golden_kernels(schedule) : case_kernels(schedule);
  if (target.schedule.gpu && !goldens) {
    // every 8th CPU-schedule kernel too (vector code through the GPU printers), but not
    // one the GPU schedule made as well (the same text, so the same name: a batch of one
    // translation unit would define it twice), nor one that reads packed weights: only
    // the CPU schedule packs (jit/weight_packing.h), so no GPU target ever compiles those
    std::set<std::string> names;
    for (const jit::Kernel& k : out) names.insert(k.name);
    const CaseKernels& cpu = collect_case_kernels(cpu_schedule());
    for (size_t i = 0; i < cpu.kernels.size(); i += 8)
      if (!cpu.packed.contains(cpu.kernels[i].name) && names.insert(cpu.kernels[i].name).second) out.push_back(cpu.kernels[i]);
  }
  return out;
}

// Kernels' PTX modules joined into one (entries and labels are per kernel; the header
// is kept once), so one ptxas run checks many kernels.
std::string joined_ptx(const jit::Target& target, std::span<const jit::Kernel> kernels, const jit::Capabilities& caps) {
  std::string out;
  bool first = true;
  for (const jit::Kernel& k : kernels) {
    std::istringstream lines(target.print(k, caps));
    std::string line;
    while (std::getline(lines, line)) {
      const bool header = line.rfind(".version", 0) == 0 || line.rfind(".target", 0) == 0 || line.rfind(".address_size", 0) == 0;
      if (header && !first) continue;
      out += line;
      out += '\n';
    }
    first = false;
  }
  return out;
}

std::unique_ptr<moat::backends::Device>& opencl_device() {
  static std::unique_ptr<moat::backends::Device> device;
  static std::string why;
  if (!device && why.empty()) {
    try {
      device = moat::backends::open_device("opencl:0");
    } catch (const moat::UserError& e) {
      why = e.what();
    }
  }
  return device;
}

// An offline validator of one artifact format.
struct Validator {
  std::string_view format;
  std::vector<std::string_view> archs;  // architectures checked; "" the target's default
  size_t batch;                         // kernels per tool run
  bool goldens;                         // also the golden models' kernels (else an executing suite runs them)
  // "" when the tool is here, else why not.
  std::string (*unavailable)();
  // "" when the batch passes, else the tool's messages.
  std::string (*check)(const jit::Target&, const jit::Capabilities&, std::span<const jit::Kernel>);
};

std::string spirv_val(const jit::Target& target, const jit::Capabilities& caps, std::span<const jit::Kernel> kernels) {
#ifdef MOAT_HAVE_SPIRV_TOOLS
  spv_context context = spvContextCreate(SPV_ENV_OPENCL_1_2);
  std::string errors;
  for (const jit::Kernel& k : kernels) {
    const std::string spv = target.print(k, caps);
    if (spv.size() % 4 != 0) {
      errors += moat::cat(k.name, ": ", spv.size(), " bytes is not whole words\n");
      continue;
    }
    std::vector<uint32_t> words(spv.size() / 4);
    std::memcpy(words.data(), spv.data(), spv.size());
    spv_const_binary_t binary{words.data(), words.size()};
    spv_diagnostic diagnostic = nullptr;
    if (spvValidate(context, &binary, &diagnostic) != SPV_SUCCESS)
      errors += moat::cat(k.name, ": ", diagnostic ? diagnostic->error : "invalid", "\n");
    spvDiagnosticDestroy(diagnostic);
  }
  spvContextDestroy(context);
  return errors;
#else
  (void)target, (void)caps, (void)kernels;
  return "SPIRV-Tools missing";
#endif
}

const Validator kValidators[] = {
    {"ll", {""}, 1, true, [] { return std::string(); },
     [](const jit::Target& t, const jit::Capabilities& caps, std::span<const jit::Kernel> k) {
       const std::string errors = moat::backends::cpu::verify_llvm_ir(t.print(k[0], caps));
       return errors.empty() ? errors : moat::cat(k[0].name, ": ", errors);
     }},
    {"spv", {""}, 256, true,
     [] {
#ifdef MOAT_HAVE_SPIRV_TOOLS
       return std::string();
#else
       return std::string("SPIRV-Tools was not found at build time (Debian: spirv-tools)");
#endif
     },
     spirv_val},
    {"cl", {""}, 64, false,  // the golden models run on PoCL in tests/models/goldens_test.cpp
     [] {
       return opencl_device() ? std::string() : std::string("no OpenCL device (opencl:0) to build OpenCL C on");
     },
     [](const jit::Target&, const jit::Capabilities&, std::span<const jit::Kernel> k) {
       // one program per batch: fewer driver builds, errors still findable
       std::vector<std::string> names;
       for (const jit::Kernel& kernel : k) names.push_back(kernel.name);
       try {
         opencl_device()->compile(moat::backends::Artifact::text("cl", jit::emit_opencl(k), names));
       } catch (const std::exception& e) {
         return std::string(e.what());
       }
       return std::string();
     }},
    {"hip", {"gfx90a", "gfx1030"}, 256, true,
     [] {
       return moat::backends::hip::hip_compiler_available() ? std::string()
                                                             : moat::backends::hip::hip_compiler_unavailable_reason();
     },
     [](const jit::Target&, const jit::Capabilities& caps, std::span<const jit::Kernel> k) {
       // one translation unit per batch: hiprtc's start-up dominates small units
       return moat::backends::hip::check_hip(jit::emit_hip(k), caps.arch);
     }},
    {"ptx", {"sm_80", "sm_90"}, 128, true,
     [] {
       return moat::backends::cuda::ptxas_available() ? std::string()
                                                      : std::string("ptxas not found (install the CUDA toolkit to check PTX)");
     },
     [](const jit::Target& t, const jit::Capabilities& caps, std::span<const jit::Kernel> k) {
       return moat::backends::cuda::check_ptx(joined_ptx(t, k, caps), caps.arch);
     }},
};

// Targets no offline tool checks here, and why.
const std::map<std::string_view, std::string_view> kNotValidated = {
    {"bc-spir", "SPIR 1.2 bitcode has no offline validator; PoCL loads it in opencl_conformance_test"},
};

const Validator* validator_of(const jit::Target& t) {
  for (const Validator& v : kValidators)
    if (v.format == t.format) return &v;
  return nullptr;
}

// Validates every target's kernels (the conformance cases', or the golden models').
void validate_all(bool goldens) {
  for (const jit::Target& target : jit::targets()) {
    const Validator* v = validator_of(target);
    if (!v) {
      MESSAGE(target.name, ": not validated offline: ", kNotValidated.at(target.format));
      continue;
    }
    if (goldens && !v->goldens) continue;
    if (const std::string why = v->unavailable(); !why.empty()) {
      MESSAGE(target.name, ": skipped: ", why);
      continue;
    }
    for (std::string_view arch : v->archs) {
      const jit::Capabilities& caps = jit::capabilities_of(target, arch);
      const Kernels kernels = kernels_for(target, caps, goldens);
      const jit::Schedule schedule = jit::schedule_for(target, caps);
      int runs = 0;
      const auto began = std::chrono::steady_clock::now();
      for (size_t start = 0; start < kernels.size(); start += v->batch) {
        std::span<const jit::Kernel> chunk(kernels.data() + start, std::min(v->batch, kernels.size() - start));
        const std::string errors = v->check(target, caps, chunk);
        CHECK_MESSAGE(errors.empty(), target.name, " ", caps.arch, " kernels ", start, "..: ", errors.substr(0, 4000));
        ++runs;
      }
      MESSAGE(target.name, " ", (caps.arch.empty() ? "generic" : caps.arch), ": ", kernels.size(), " kernels (",
              schedule.gpu ? moat::cat(schedule.work_group_size, " work-items per group") : moat::cat(schedule.vector_lanes, " f32 lanes"),
              ") in ", runs, " runs, ",
              std::chrono::duration_cast<std::chrono::seconds>(std::chrono::steady_clock::now() - began).count(), " s");
    }
  }
}

}  // namespace

TEST_CASE("every target has an offline validator or says why not, and its architectures are in the table") {
  for (const jit::Target& target : jit::targets()) {
    const Validator* v = validator_of(target);
    CHECK_MESSAGE((v != nullptr || kNotValidated.count(target.format) == 1), target.name, " has neither");
    if (v)
      for (std::string_view arch : v->archs) CHECK_NOTHROW(jit::capabilities_of(target, arch));
  }
}

TEST_CASE("each target's default schedule lowers the cases to hundreds of distinct kernels") {
  for (const jit::Target& target : jit::targets()) {
    const jit::Schedule s = jit::schedule_for(target, jit::capabilities_of(target));
    CHECK_MESSAGE(case_kernels(s).size() > 200, target.name);
    if (s.gpu) CHECK_MESSAGE(s.work_group_size == 256, target.name, ": GPU work-groups of ", s.work_group_size);
  }
}

namespace {

// The table kernel's output on the OpenCL device from `artifact` (its one kernel).
std::vector<float> run_table_kernel_on_opencl(const moat::backends::Artifact& artifact) {
  auto& device = opencl_device();
  const jit::Kernel k = moat::testing::table_kernel();
  auto module = device->load(device->compile(artifact));
  auto x = device->allocate(moat::testing::kTableIndices.size() * sizeof(float));
  auto out = device->allocate(moat::testing::kTableOut * sizeof(float));
  device->stream().write(*x, 0, moat::testing::kTableIndices.data(), x->size());
  moat::backends::Grid grid;
  const std::vector<moat::backends::KernelArg> args = {moat::backends::KernelArg::of(*x), moat::backends::KernelArg::of(*out)};
  device->stream().launch(module->kernel(k.name), grid, args);
  std::vector<float> got(moat::testing::kTableOut);
  device->stream().read(*out, 0, got.data(), out->size());
  device->stream().synchronize();
  return got;
}

}  // namespace

TEST_CASE("a kernel with constant tables passes every target's validator and runs on the OpenCL device") {
  const jit::Kernel k = moat::testing::table_kernel();
  for (const jit::Target& target : jit::targets()) {
    const Validator* v = validator_of(target);
    if (!v) continue;
    if (const std::string why = v->unavailable(); !why.empty()) {
      MESSAGE(target.name, ": skipped: ", why);
      continue;
    }
    for (std::string_view arch : v->archs) {
      const jit::Capabilities& caps = jit::capabilities_of(target, arch);
      const std::string errors = v->check(target, caps, std::span<const jit::Kernel>(&k, 1));
      CHECK_MESSAGE(errors.empty(), target.name, " ", caps.arch, ": ", errors.substr(0, 4000));
    }
  }
  if (!opencl_device()) {
    MESSAGE("no OpenCL device: the table kernel is not run");
    return;
  }
  const std::vector<float> want = moat::testing::table_kernel_expected();
  CHECK(run_table_kernel_on_opencl(moat::backends::Artifact::text("cl", jit::emit_opencl(k), {k.name})) == want);
  const std::vector<std::string>& features = opencl_device()->properties().info.features;
  if (std::find(features.begin(), features.end(), "cl_khr_spir") != features.end()) {
    moat::backends::Artifact spir;
    spir.format = "bc-spir";
    spir.bytes = jit::emit_spir_bitcode(k);
    spir.kernels = {k.name};
    CHECK(run_table_kernel_on_opencl(spir) == want);
  }
}

TEST_CASE("every target's kernels of the conformance case families pass its validator") { validate_all(false); }

TEST_CASE("every target's kernels of the golden DeepSeek models pass its validator") { validate_all(true); }

namespace {

// The 64-bit integer divisions and remainders of a kernel as a 32-bit-index target
// prints it (after legalize_numerics and narrow_index_arithmetic), by kind.
struct WideDivisions : jit::Visitor {
  std::set<std::string> found;
  void visit_binary(const jit::Node& n) override {
    const auto op = static_cast<jit::BinaryOp>(n.op);
    if ((op == jit::BinaryOp::div || op == jit::BinaryOp::rem) && n.type.scalar == jit::Scalar::i64)
      found.insert(moat::cat(jit::binary_name(op), " of i64"));
    visit_children(n);
  }
};

}  // namespace

// The conformance cases divide i32 tensors by i32 tensors (Tensor IR's integer div and
// mod, whose quotient INT32_MIN / -1 leaves i32): those kernels keep an i64 division, as
// their meaning requires; every index computation narrows.
TEST_CASE("GPU targets compute no 64-bit division or remainder in the golden models' kernels") {
  for (const jit::Target& target : jit::targets()) {
    if (target.index_bits != 32) continue;
    const jit::Capabilities& caps = jit::capabilities_of(target);
    const jit::Schedule schedule = jit::schedule_for(target, caps);
    const Kernels& kernels = golden_kernels(schedule);
    for (const jit::Kernel& k : kernels) {
      WideDivisions wide;
      wide.visit(*jit::narrow_index_arithmetic(jit::legalize_numerics(k, target.numerics)).body);
      CHECK_MESSAGE(wide.found.empty(), target.name, " ", k.name, ": ", *wide.found.begin());
    }
    int data_divisions = 0;
    for (const jit::Kernel& k : case_kernels(schedule)) {
      WideDivisions wide;
      wide.visit(*jit::narrow_index_arithmetic(jit::legalize_numerics(k, target.numerics)).body);
      data_divisions += wide.found.empty() ? 0 : 1;
    }
    CHECK(data_divisions <= 16);
    MESSAGE(target.name, ": ", kernels.size(), " golden-model kernels without a 64-bit division; ", data_divisions,
            " conformance kernels divide i32 data in i64");
  }
  // and in the PTX itself (ptxas would call __cuda_sm20_div_s64 / rem_s64 for them)
  const jit::Target& ptx = jit::target_named("ptx");
  const jit::Capabilities& sm90 = jit::capabilities_of(ptx, "sm_90");
  for (const jit::Kernel& k : golden_kernels(jit::schedule_for(ptx, sm90))) {
    const std::string text = ptx.print(k, sm90);
    for (const char* op : {"div.s64", "rem.s64", "div.u64", "rem.u64"})
      CHECK_MESSAGE(text.find(op) == std::string::npos, k.name, " has ", op);
  }
}

TEST_CASE("GPU targets multiply packed Q8_0 weights in integers: dp4a, 16-byte loads and warp shuffles in PTX") {
  for (const jit::Target& target : jit::targets()) {
    if (!target.schedule.gpu) continue;
    const jit::Capabilities& caps = jit::capabilities_of(target, target.name == "ptx" ? "sm_90" : "");
    int q8_kernels = 0, int8_kernels = 0;
    for (const jit::Kernel& k : golden_kernels(jit::schedule_for(target, caps))) {
      if (k.name.rfind("matmul_q8_0", 0) != 0) continue;
      ++q8_kernels;
      const std::string kir = jit::print(k);
      if (kir.find("load.vector.i32x4") == std::string::npos) continue;  // a weight with rows not in tiles of 16
      CHECK_MESSAGE(kir.find("dot4.words") != std::string::npos, target.name, " ", k.name);
      ++int8_kernels;
      if (target.name != "ptx") continue;
      const std::string ptx = target.print(k, caps);
      for (const char* op : {"dp4a.u32.s32", "ld.global.nc.v4.u32", "ld.global.nc.v2.u32", "shfl.sync.bfly.b32"})
        CHECK_MESSAGE(ptx.find(op) != std::string::npos, k.name, " has no ", op);
    }
    CHECK_MESSAGE(int8_kernels >= q8_kernels - 2, target.name, ": ", int8_kernels, " of ", q8_kernels);
    MESSAGE(target.name, ": ", int8_kernels, " of ", q8_kernels, " Q8_0 matmul kernels multiply packed weights in integers");
  }
}

TEST_CASE("GPU decode products with bf16 weights read a row per warp in 16-byte loads and add it by shuffles") {
  const jit::Target& ptx = jit::target_named("ptx");
  const jit::Capabilities& sm90 = jit::capabilities_of(ptx, "sm_90");
  const moat::models::DeepSeekModel m =
      moat::models::load_deepseek(std::string(MOAT_SOURCE_DIR) + "/tests/data/goldens/v2_lite/model-bf16.gguf", {});
  int products = 0, gemv = 0;
  for (const moat::ir::Graph& g : moat::runtime::session_graphs(m, 1, 64))  // decode only
    for (const jit::PlanKernel& pk : jit::lower(g, {}, jit::schedule_for(ptx, sm90)).kernels) {
      if (pk.kernel.name.rfind("matmul_bf16", 0) != 0) continue;
      ++products;
      const std::string text = ptx.print(pk.kernel, sm90);
      if (text.find("ld.global.nc.v4.u32") == std::string::npos) continue;  // B not a transposed weight
      CHECK_MESSAGE(text.find("shfl.sync.bfly.b32") != std::string::npos, pk.kernel.name);
      ++gemv;
    }
  CHECK(gemv * 10 >= products * 9);  // every weight product; the rest multiply by a B [K, N] (not a weight)
  MESSAGE(gemv, " of ", products, " bf16 decode products are warp-per-row GEMVs");
}

TEST_CASE("GPU targets multiply packed Q4_K weights with q8_k activations in integers") {
  for (const jit::Target& target : jit::targets()) {
    if (!target.schedule.gpu) continue;
    const jit::Capabilities& caps = jit::capabilities_of(target, target.name == "ptx" ? "sm_90" : "");
    int int8_kernels = 0;
    for (const jit::Kernel& k : case_kernels(jit::schedule_for(target, caps))) {
      if (k.name.rfind("matmul_q4_k", 0) != 0) continue;
      const std::string kir = jit::print(k);
      if (kir.find("load.vector.i32x4") == std::string::npos) continue;
      CHECK_MESSAGE(kir.find("dot4.words") != std::string::npos, target.name, " ", k.name);
      ++int8_kernels;
      if (target.name != "ptx") continue;
      const std::string ptx = target.print(k, caps);
      for (const char* op : {"dp4a.u32.s32", "ld.global.nc.v4.u32", "shfl.sync.bfly.b32"})
        CHECK_MESSAGE(ptx.find(op) != std::string::npos, k.name, " has no ", op);
    }
    CHECK_MESSAGE(int8_kernels >= 4, target.name, ": ", int8_kernels);  // GEMV, GEMM, per-head, experts
    MESSAGE(target.name, ": ", int8_kernels, " Q4_K case kernels multiply packed weights in integers");
  }
}
