// The CPU kernel ABI: what jit/'s LLVM emitter produces and the CPU stream calls.
//
// Every kernel is one symbol with C linkage:
//
//   extern "C" void NAME(const uint64_t* args, const int64_t* grid,
//                        int64_t group_begin, int64_t group_end);
//
//   args   one 8-byte slot per KernelArg, in the kernel's declared order: a buffer's
//          host pointer; an i64 value; an f32's bits in the low 4 bytes (rest zero).
//   grid   6 values {groups[0], groups[1], groups[2], items[0], items[1], items[2]}.
//   The call runs the work-groups with linear ids [group_begin, group_end), where
//   linear id = x + groups[0] * (y + groups[1] * z), and iterates each group's
//   work-items itself (there are no hardware work-items on the CPU). Work-group-local
//   memory is the kernel's own (a stack array per group); it never needs a barrier
//   across threads, since one call runs a whole group.
//
// In LLVM IR: define void @NAME(i64* %args, i64* %grid, i64 %group_begin, i64 %group_end)
// One launch calls the kernel concurrently from several threads on disjoint ranges.
#pragma once

#include <cstdint>
#include <cstring>

namespace moat::backends::cpu {

using KernelFn = void (*)(const uint64_t* args, const int64_t* grid, int64_t group_begin, int64_t group_end);

inline constexpr int kGridSlots = 6;

// The arg slot of an f32 scalar: its bits in the low 4 bytes, the rest zero.
inline uint64_t f32_slot(float value) {
  uint32_t bits = 0;
  std::memcpy(&bits, &value, sizeof bits);
  return bits;
}

// Range `index` of `ranges` near-equal contiguous ranges over [0, total): [begin, end).
inline void split_range(int64_t total, int64_t ranges, int64_t index, int64_t& begin, int64_t& end) {
  int64_t base = total / ranges, extra = total % ranges;
  begin = index * base + (index < extra ? index : extra);
  end = begin + base + (index < extra ? 1 : 0);
}

}  // namespace moat::backends::cpu
