// Planned memory for a lowered plan: every intermediate and output buffer gets an offset
// in one arena, assigned by liveness (two buffers share bytes only when no kernel sees
// both alive), and an arena a session's plans share (they never run at once).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "backends/device.h"
#include "jit/lower.h"

namespace moat::runtime {

struct MemoryPlan {
  std::vector<int64_t> offset;  // per plan buffer: bytes into the arena, -1 when not in it
  uint64_t bytes = 0;           // the arena size the plan needs
};

// Intermediates and outputs (not aliases, inputs, params or constants) are placed; a
// buffer lives from the first kernel that reads or writes it to the last, outputs to the
// end of the plan (they are read back after it). Offsets are multiples of
// backends::kViewAlignment. Largest buffers first, each at the lowest offset free over
// its lifetime.
MemoryPlan plan_memory(const jit::Plan& plan);

// One device buffer that grows to the largest plan it serves. Growing replaces it (at
// plan creation, never per step); `generation` tells holders of views to make them again.
class Arena {
 public:
  explicit Arena(backends::Device& device) : device_(device) {}
  // At least `bytes` from now on.
  void reserve(uint64_t bytes);
  const backends::Buffer* buffer() const { return buffer_.get(); }
  uint64_t bytes() const { return buffer_ ? buffer_->size() : 0; }
  uint64_t generation() const { return generation_; }

 private:
  backends::Device& device_;
  std::unique_ptr<backends::Buffer> buffer_;
  uint64_t generation_ = 0;
};

}  // namespace moat::runtime
