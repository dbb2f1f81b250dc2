#include "runtime/executor.h"

#include <algorithm>
#include <chrono>
#include <map>

#include "jit/weight_packing.h"
#include "runtime/emit.h"
#include "support/error.h"

namespace moat::runtime {

struct Executor::Compiled {
  std::map<std::string, std::unique_ptr<backends::Module>> modules;  // by kernel name
  std::vector<backends::Kernel*> kernels;                            // per plan kernel
  std::vector<std::unique_ptr<backends::Buffer>> owned;              // per plan buffer: constants (else null)
  std::vector<std::unique_ptr<backends::Buffer>> views;              // per plan buffer: its bytes of the arena (else null)
  std::vector<std::unique_ptr<backends::Buffer>> inputs;             // per plan buffer: an input's device copy (else null)
  std::vector<std::vector<backends::KernelArg>> args;                // per plan kernel (buffer slots patched per run)
  std::vector<std::string> labels;                                   // per plan kernel: its name in a profile
};

namespace {

// "matmul_f32_2feaf63054082fd8 [attn_q_a]": the kernel's name and the weights it reads
// (a packed or tiled weight's buffers by the weight's name) without their layer prefix
// and ".weight", so that a profile tells launches apart by what they compute and sums
// the same work over layers.
std::string profile_label(const jit::Plan& plan, const jit::PlanKernel& pk) {
  std::vector<std::string> weights;
  for (int b : pk.args) {
    const jit::PlanBuffer& buffer = plan.buffers.at(static_cast<size_t>(b));
    if (buffer.role != jit::PlanBuffer::Role::param) continue;
    std::string name = jit::packed_weight_of(buffer.name);
    if (name.empty()) name = buffer.name;
    if (name.starts_with("blk.")) name = name.substr(std::min(name.size(), name.find('.', 4) + 1));
    if (name.ends_with(".weight")) name.resize(name.size() - 7);
    if (std::find(weights.begin(), weights.end(), name) == weights.end()) weights.push_back(name);
  }
  return weights.empty() ? pk.kernel.name : cat(pk.kernel.name, " [", join(weights, ", "), "]");
}

}  // namespace

Executor::Executor(backends::Device& device, runtime::KernelCache& cache, jit::Plan plan, const ExecutorOptions& options)
    : device_(device), plan_(std::move(plan)), profile_(options.profile), compiled_(std::make_unique<Compiled>()),
      memory_(plan_memory(plan_)), arena_(options.arena) {
  if (!arena_) {
    own_arena_ = std::make_unique<Arena>(device_);
    arena_ = own_arena_.get();
  }
  arena_->reserve(memory_.bytes);
  stats_.arena_bytes = memory_.bytes;
  const auto start = std::chrono::steady_clock::now();
  for (const jit::PlanKernel& pk : plan_.kernels) {
    auto it = compiled_->modules.find(pk.kernel.name);
    if (it == compiled_->modules.end()) {
      backends::Artifact binary = cache.get_or_compile(device_, emit_for(device_.properties(), pk.kernel, options.opencl_format));
      it = compiled_->modules.emplace(pk.kernel.name, device_.load(binary)).first;
    }
    compiled_->kernels.push_back(&it->second->kernel(pk.kernel.name));
    compiled_->labels.push_back(profile_label(plan_, pk));
    if (options.progress)
      options.progress(static_cast<int64_t>(compiled_->kernels.size()), static_cast<int64_t>(plan_.kernels.size()));
  }
  // A launch needs a kernel's name, grid and arguments: its body, emitted, goes (the
  // Kernel IR of a session's many plans is tens of MB).
  for (jit::PlanKernel& pk : plan_.kernels) pk.kernel.body = nullptr;
  stats_.kernels = static_cast<int>(plan_.kernels.size());
  stats_.distinct_kernels = static_cast<int>(compiled_->modules.size());
  stats_.compile_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();

  compiled_->owned.resize(plan_.buffers.size());
  compiled_->inputs.resize(plan_.buffers.size());
  for (size_t i = 0; i < plan_.buffers.size(); ++i) {
    const jit::PlanBuffer& b = plan_.buffers[i];
    using Role = jit::PlanBuffer::Role;
    if (b.role != Role::constant) continue;
    compiled_->owned[i] = device_.allocate(static_cast<uint64_t>(std::max<int64_t>(b.bytes, 1)));
    device_.stream().write(*compiled_->owned[i], 0, b.data.data(), b.data.size());
  }
}

Executor::~Executor() = default;

std::vector<ir::HostTensor> Executor::run(const ir::Bindings& bindings,
                                          const std::map<std::string, const backends::Buffer*>* resident,
                                          std::span<const backends::Buffer* const> output_into,
                                          const std::map<std::string, const backends::Buffer*>* carried) {
  if (views_generation_ != arena_->generation()) {  // the arena was made (again): views of its bytes
    compiled_->views.clear();
    compiled_->views.resize(plan_.buffers.size());
    for (size_t i = 0; i < plan_.buffers.size(); ++i)
      if (memory_.offset[i] >= 0)
        compiled_->views[i] = device_.view(*arena_->buffer(), static_cast<uint64_t>(memory_.offset[i]),
                                           static_cast<uint64_t>(plan_.buffers[i].bytes));
    views_generation_ = arena_->generation();
  }
  // Bound tensors become buffers for this run (zero-copy where the device shares
  // host memory).
  std::vector<std::unique_ptr<backends::Buffer>> bound(plan_.buffers.size());
  std::vector<const backends::Buffer*> buffer(plan_.buffers.size(), nullptr);
  MOAT_INTERNAL_CHECK(output_into.empty() || output_into.size() == plan_.outputs.size(), "output buffers for ",
                      output_into.size(), " of ", plan_.outputs.size(), " outputs");
  std::vector<const backends::Buffer*> redirected(plan_.buffers.size(), nullptr);  // arena buffers written elsewhere
  for (size_t k = 0; k < output_into.size(); ++k) {
    if (!output_into[k]) continue;
    const int root = plan_.root_of(plan_.outputs[k]);
    if (memory_.offset[static_cast<size_t>(root)] >= 0) redirected[static_cast<size_t>(root)] = output_into[k];
  }
  for (size_t i = 0; i < plan_.buffers.size(); ++i) {
    const jit::PlanBuffer& b = plan_.buffers[i];
    if (b.alias_of >= 0) {
      buffer[i] = buffer.at(static_cast<size_t>(b.alias_of));
      continue;
    }
    if (redirected[i]) {
      buffer[i] = redirected[i];
      continue;
    }
    if (compiled_->owned[i] || compiled_->views[i]) {
      buffer[i] = compiled_->owned[i] ? compiled_->owned[i].get() : compiled_->views[i].get();
      continue;
    }
    const backends::Buffer* on_device = nullptr;
    for (const auto* names : {resident, carried}) {
      if (!names || on_device) continue;
      auto it = names->find(b.name);
      if (it != names->end()) on_device = it->second;
    }
    if (on_device) {
      buffer[i] = on_device;
      continue;
    }
    const ir::HostTensor* packed = packed_.find(b.name, bindings.tensors);  // a packed weight's half
    auto it = bindings.tensors.find(b.name);
    if (!packed && it == bindings.tensors.end()) user_error("no tensor bound to ", b.name, " (", ir::dtype_name(b.dtype), ")");
    const ir::HostTensor& t = packed ? *packed : it->second;
    if (t.dtype() != b.dtype || t.shape() != b.shape)
      user_error("tensor ", b.name, " is ", ir::dtype_name(t.dtype()), " of another shape than the ", ir::dtype_name(b.dtype),
                 " the compiled graph was specialised for");
    if (b.role == jit::PlanBuffer::Role::input) {
      // Inputs (token ids, positions) are copied into buffers of this plan made once:
      // no allocation per run, and a tensor written in place (write_rows) is a copy,
      // never the caller's const memory.
      std::unique_ptr<backends::Buffer>& staged = compiled_->inputs[i];
      if (!staged) staged = device_.allocate(static_cast<uint64_t>(std::max<int64_t>(b.bytes, 1)));
      if (!t.bytes().empty()) device_.stream().write(*staged, 0, t.bytes().data(), t.bytes().size());
      buffer[i] = staged.get();
      continue;
    }
    bound[i] = device_.wrap_host(t.bytes().data(), t.bytes().size());
    buffer[i] = bound[i].get();
  }

  backends::Stream& stream = device_.stream();
  KernelProfile* profile = profile_ ? profile_ : active_profile();
  if (profile) stream.synchronize();  // earlier work is not charged to the first kernel
  std::vector<backends::KernelArg> args;
  for (size_t k = 0; k < plan_.kernels.size(); ++k) {
    const jit::PlanKernel& pk = plan_.kernels[k];
    args.clear();
    for (int b : pk.args) args.push_back(backends::KernelArg::of(*buffer.at(static_cast<size_t>(b))));
    backends::Grid grid;
    for (int d = 0; d < 3; ++d) {
      grid.groups[d] = pk.kernel.groups[d];
      grid.items[d] = pk.kernel.items[d];
    }
    const auto start = profile ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    stream.launch(*compiled_->kernels[k], grid, args);
    if (profile) {
      stream.synchronize();
      profile->add(compiled_->labels[k], std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
  }

  std::vector<ir::HostTensor> outputs;
  for (size_t k = 0; k < plan_.outputs.size(); ++k) {
    const int o = plan_.outputs[k];
    const jit::PlanBuffer& b = plan_.buffers[static_cast<size_t>(o)];
    if (!output_into.empty() && output_into[k]) {
      const int root = plan_.root_of(o);
      if (redirected[static_cast<size_t>(root)]) {  // written into the caller's buffer
        outputs.push_back(ir::HostTensor::from_bytes(b.dtype, {0}, {}));
        continue;
      }
    }
    if (b.in_place && resident) {  // state updated on the device: the caller holds it, nothing is read back
      const int root = plan_.root_of(o);
      if (resident->count(plan_.buffers[static_cast<size_t>(root)].name)) {
        outputs.push_back(ir::HostTensor::from_bytes(b.dtype, {0}, {}));
        continue;
      }
    }
    std::vector<uint8_t> bytes(static_cast<size_t>(b.bytes));
    if (!bytes.empty()) stream.read(*buffer[static_cast<size_t>(o)], 0, bytes.data(), bytes.size());
    outputs.push_back(ir::HostTensor::from_bytes(b.dtype, b.shape, std::move(bytes)));
  }
  stream.synchronize();
  return outputs;
}

}  // namespace moat::runtime
