#include "runtime/packed_weights.h"

#include <cstring>

#include "jit/weight_packing.h"
#include "support/memory.h"
#include "support/error.h"

namespace moat::runtime {

const ir::HostTensor* PackedWeights::find(const std::string& buffer_name, const std::map<std::string, ir::HostTensor>& weights) {
  const std::string weight = jit::packed_weight_of(buffer_name);
  if (weight.empty()) return nullptr;
  auto done = packed_.find(buffer_name);
  if (done != packed_.end()) return &done->second;
  auto it = weights.find(weight);
  if (it == weights.end()) user_error("no tensor bound to ", weight, " (the weight of ", buffer_name, ")");
  const ir::HostTensor& w = it->second;
  if (buffer_name == jit::packed_tiles_name(weight)) {  // a float weight: one buffer of its dtype
    if (!jit::float_packable(w.dtype(), w.shape()))
      user_error("tensor ", weight, " is a ", ir::dtype_name(w.dtype()), " tensor that the compiled graph cannot use packed");
    std::vector<uint8_t> tiles = jit::pack_float_weight(w.dtype(), w.shape(), w.bytes());
    release_host_pages(w.bytes().data(), w.bytes().size());  // kernels read the packed copy from now on
    const int64_t elements = static_cast<int64_t>(tiles.size()) / ir::dtype_block_bytes(w.dtype());
    return &(packed_[buffer_name] = ir::HostTensor::from_bytes(w.dtype(), {elements}, std::move(tiles)));
  }
  if (!jit::packable(w.dtype(), w.shape()))
    user_error("tensor ", weight, " is a ", ir::dtype_name(w.dtype()), " tensor that the compiled graph cannot use packed");
  jit::PackedWeight p = jit::pack_weight(w.dtype(), w.shape(), w.bytes());
  release_host_pages(w.bytes().data(), w.bytes().size());  // kernels read the packed copy from now on
  std::vector<uint8_t> scales(p.scales.size() * sizeof(uint16_t));
  if (!scales.empty()) std::memcpy(scales.data(), p.scales.data(), scales.size());
  const auto quad_bytes = static_cast<int64_t>(p.quads.size());
  const auto scale_count = static_cast<int64_t>(p.scales.size());
  packed_[jit::packed_quads_name(weight)] = ir::HostTensor::from_bytes(ir::DType::u8, {quad_bytes}, std::move(p.quads));
  packed_[jit::packed_scales_name(weight)] = ir::HostTensor::from_bytes(ir::DType::f16, {scale_count}, std::move(scales));
  return &packed_.at(buffer_name);
}

}  // namespace moat::runtime
