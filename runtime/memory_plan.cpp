#include "runtime/memory_plan.h"

#include <algorithm>
#include <numeric>

namespace moat::runtime {

namespace {

uint64_t aligned(uint64_t bytes) { return (bytes + backends::kViewAlignment - 1) / backends::kViewAlignment * backends::kViewAlignment; }

}  // namespace

MemoryPlan plan_memory(const jit::Plan& plan) {
  const size_t n = plan.buffers.size();
  const int end = static_cast<int>(plan.kernels.size());
  MemoryPlan mp;
  mp.offset.assign(n, -1);
  std::vector<int> first(n, end + 1), last(n, -1);
  for (int k = 0; k < end; ++k)
    for (int b : plan.kernels[static_cast<size_t>(k)].args) {
      const size_t r = static_cast<size_t>(plan.root_of(b));
      first[r] = std::min(first[r], k);
      last[r] = std::max(last[r], k);
    }
  for (int o : plan.outputs) {
    const size_t r = static_cast<size_t>(plan.root_of(o));
    first[r] = std::min(first[r], end);
    last[r] = end;
  }
  std::vector<size_t> placed_order;
  for (size_t i = 0; i < n; ++i) {
    const jit::PlanBuffer& b = plan.buffers[i];
    const bool planned = b.alias_of < 0 && (b.role == jit::PlanBuffer::Role::intermediate || b.role == jit::PlanBuffer::Role::output);
    if (!planned) continue;
    if (last[i] < 0) first[i] = last[i] = 0;  // never touched: still needs distinct bytes
    placed_order.push_back(i);
  }
  std::stable_sort(placed_order.begin(), placed_order.end(),
                   [&](size_t a, size_t b) { return plan.buffers[a].bytes > plan.buffers[b].bytes; });
  std::vector<size_t> placed;
  for (size_t i : placed_order) {
    const uint64_t size = aligned(static_cast<uint64_t>(std::max<int64_t>(plan.buffers[i].bytes, 1)));
    // Busy ranges of the placed buffers alive at the same time, by offset.
    std::vector<std::pair<uint64_t, uint64_t>> busy;
    for (size_t p : placed)
      if (first[p] <= last[i] && first[i] <= last[p])
        busy.emplace_back(static_cast<uint64_t>(mp.offset[p]),
                          static_cast<uint64_t>(mp.offset[p]) + aligned(static_cast<uint64_t>(std::max<int64_t>(plan.buffers[p].bytes, 1))));
    std::sort(busy.begin(), busy.end());
    uint64_t at = 0;
    for (const auto& [lo, hi] : busy) {
      if (at + size <= lo) break;
      at = std::max(at, hi);
    }
    mp.offset[i] = static_cast<int64_t>(at);
    mp.bytes = std::max(mp.bytes, at + size);
    placed.push_back(i);
  }
  return mp;
}

void Arena::reserve(uint64_t bytes) {
  if (buffer_ && buffer_->size() >= bytes) return;
  buffer_.reset();  // the old bytes go first: never both at once
  buffer_ = device_.allocate(std::max<uint64_t>(bytes, 1));
  ++generation_;
}

}  // namespace moat::runtime
