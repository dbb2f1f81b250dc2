// Hand-written LLVM IR kernels following the CPU kernel ABI (backends/cpu/kernel_abi.h),
// shared by the CPU backend and kernel cache tests. LLVM 14 typed-pointer syntax.
#pragma once

namespace moat::testing {

// saxpy(x: f32 buffer, y: f32 buffer, a: f32, n: i64): y[i] = a * x[i] + y[i] for
// i = group * items[0] + item < n; groups and items along dimension 0.
inline constexpr const char* kSaxpyLl = R"(
define void @saxpy(i64* %args, i64* %grid, i64 %begin, i64 %end) {
entry:
  %xp = load i64, i64* %args
  %x = inttoptr i64 %xp to float*
  %yslot = getelementptr i64, i64* %args, i64 1
  %yp = load i64, i64* %yslot
  %y = inttoptr i64 %yp to float*
  %aslot = getelementptr i64, i64* %args, i64 2
  %abits64 = load i64, i64* %aslot
  %abits = trunc i64 %abits64 to i32
  %a = bitcast i32 %abits to float
  %nslot = getelementptr i64, i64* %args, i64 3
  %n = load i64, i64* %nslot
  %islot = getelementptr i64, i64* %grid, i64 3
  %items = load i64, i64* %islot
  br label %group
group:
  %g = phi i64 [ %begin, %entry ], [ %g.next, %group.end ]
  %gdone = icmp sge i64 %g, %end
  br i1 %gdone, label %exit, label %item.pre
item.pre:
  %base = mul i64 %g, %items
  br label %item
item:
  %t = phi i64 [ 0, %item.pre ], [ %t.next, %item.cont ]
  %tdone = icmp sge i64 %t, %items
  br i1 %tdone, label %group.end, label %item.body
item.body:
  %i = add i64 %base, %t
  %inb = icmp slt i64 %i, %n
  br i1 %inb, label %do, label %item.cont
do:
  %xa = getelementptr float, float* %x, i64 %i
  %xv = load float, float* %xa
  %ya = getelementptr float, float* %y, i64 %i
  %yv = load float, float* %ya
  %m = fmul float %a, %xv
  %r = fadd float %m, %yv
  store float %r, float* %ya
  br label %item.cont
item.cont:
  %t.next = add i64 %t, 1
  br label %item
group.end:
  %g.next = add i64 %g, 1
  br label %group
exit:
  ret void
}
)";

// grid_ids(out: i64 buffer): for every group (x, y, z) and item t < items[0]*items[1]*items[2],
// out[linear_group * n_items + t] += 1 + x + 100 y + 10000 z + 1000000 t
// (so a group that runs twice, or not at all, shows).
inline constexpr const char* kGridIdsLl = R"(
define void @grid_ids(i64* %args, i64* %grid, i64 %begin, i64 %end) {
entry:
  %op = load i64, i64* %args
  %out = inttoptr i64 %op to i64*
  %gx = load i64, i64* %grid
  %gys = getelementptr i64, i64* %grid, i64 1
  %gy = load i64, i64* %gys
  %i0s = getelementptr i64, i64* %grid, i64 3
  %i0 = load i64, i64* %i0s
  %i1s = getelementptr i64, i64* %grid, i64 4
  %i1 = load i64, i64* %i1s
  %i2s = getelementptr i64, i64* %grid, i64 5
  %i2 = load i64, i64* %i2s
  %i01 = mul i64 %i0, %i1
  %items = mul i64 %i01, %i2
  %gxy = mul i64 %gx, %gy
  br label %group
group:
  %g = phi i64 [ %begin, %entry ], [ %g.next, %group.end ]
  %gdone = icmp sge i64 %g, %end
  br i1 %gdone, label %exit, label %item.pre
item.pre:
  %x = srem i64 %g, %gx
  %gdx = sdiv i64 %g, %gx
  %y = srem i64 %gdx, %gy
  %z = sdiv i64 %g, %gxy
  %y100 = mul i64 %y, 100
  %z10k = mul i64 %z, 10000
  %xy = add i64 %x, %y100
  %xyz = add i64 %xy, %z10k
  %code = add i64 %xyz, 1
  %base = mul i64 %g, %items
  br label %item
item:
  %t = phi i64 [ 0, %item.pre ], [ %t.next, %item ]
  %t1m = mul i64 %t, 1000000
  %v = add i64 %code, %t1m
  %idx = add i64 %base, %t
  %p = getelementptr i64, i64* %out, i64 %idx
  %old = load i64, i64* %p
  %new = add i64 %old, %v
  store i64 %new, i64* %p
  %t.next = add i64 %t, 1
  %tdone = icmp sge i64 %t.next, %items
  br i1 %tdone, label %group.end, label %item
group.end:
  %g.next = add i64 %g, 1
  br label %group
exit:
  ret void
}
)";

// exp_half(in: f32 buffer, out: f32 buffer): out[g] = expf(in[g]) * 0.5 for each group g;
// calls libm through the JIT's process symbol lookup.
inline constexpr const char* kExpHalfLl = R"(
declare float @llvm.exp.f32(float)

define void @exp_half(i64* %args, i64* %grid, i64 %begin, i64 %end) {
entry:
  %ip = load i64, i64* %args
  %in = inttoptr i64 %ip to float*
  %os = getelementptr i64, i64* %args, i64 1
  %op = load i64, i64* %os
  %out = inttoptr i64 %op to float*
  br label %loop
loop:
  %g = phi i64 [ %begin, %entry ], [ %g.next, %body ]
  %done = icmp sge i64 %g, %end
  br i1 %done, label %exit, label %body
body:
  %ia = getelementptr float, float* %in, i64 %g
  %v = load float, float* %ia
  %e = call float @llvm.exp.f32(float %v)
  %h = fmul float %e, 5.000000e-01
  %oa = getelementptr float, float* %out, i64 %g
  store float %h, float* %oa
  %g.next = add i64 %g, 1
  br label %loop
exit:
  ret void
}
)";

// Does nothing: for launch-overhead measurements and loader tests.
inline constexpr const char* kEmptyLl = R"(
define void @empty(i64* %args, i64* %grid, i64 %begin, i64 %end) {
  ret void
}
)";

}  // namespace moat::testing
