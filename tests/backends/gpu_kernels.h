// Hand-written GPU kernels for the CUDA and HIP backend tests and the offline PTX / HIP
// checks. Same ABI as the CPU's kSaxpyLl (ll_kernels.h): saxpy(x: f32 buffer,
// y: f32 buffer, a: f32, n: i64): y[i] = a * x[i] + y[i] for i = block * threads +
// thread < n, along dimension 0.
#pragma once

namespace moat::testing {

// PTX ISA 7.0 (CUDA 11.0) for sm_80: assembles for sm_80 and later (sm_90), not sm_75.
inline constexpr const char* kSaxpyPtx = R"(.version 7.0
.target sm_80
.address_size 64

.visible .entry saxpy(
    .param .u64 saxpy_x,
    .param .u64 saxpy_y,
    .param .f32 saxpy_a,
    .param .u64 saxpy_n)
{
    .reg .pred  %p<2>;
    .reg .f32   %f<4>;
    .reg .b32   %r<4>;
    .reg .b64   %rd<10>;

    ld.param.u64    %rd1, [saxpy_x];
    ld.param.u64    %rd2, [saxpy_y];
    ld.param.f32    %f1, [saxpy_a];
    ld.param.u64    %rd3, [saxpy_n];
    mov.u32         %r1, %ctaid.x;
    mov.u32         %r2, %ntid.x;
    mov.u32         %r3, %tid.x;
    mul.wide.u32    %rd4, %r1, %r2;
    cvt.u64.u32     %rd5, %r3;
    add.s64         %rd4, %rd4, %rd5;          // i
    setp.ge.s64     %p1, %rd4, %rd3;
    @%p1 bra        DONE;
    cvta.to.global.u64 %rd6, %rd1;
    cvta.to.global.u64 %rd7, %rd2;
    shl.b64         %rd8, %rd4, 2;             // i * 4 bytes
    add.s64         %rd9, %rd6, %rd8;
    ld.global.f32   %f2, [%rd9];               // x[i]
    add.s64         %rd9, %rd7, %rd8;
    ld.global.f32   %f3, [%rd9];               // y[i]
    fma.rn.f32      %f3, %f1, %f2, %f3;
    st.global.f32   [%rd9], %f3;
DONE:
    ret;
}
)";

// Invalid: line 17 writes %f9, a register the kernel never declares.
inline constexpr const char* kBadPtx = R"(.version 7.0
.target sm_80
.address_size 64

.visible .entry bad(
    .param .u64 bad_y,
    .param .f32 bad_a)
{
    .reg .f32   %f<4>;
    .reg .b64   %rd<4>;

    ld.param.u64    %rd1, [bad_y];
    ld.param.f32    %f1, [bad_a];
    cvta.to.global.u64 %rd2, %rd1;
    ld.global.f32   %f2, [%rd2];
    add.f32         %f3, %f1, %f2;
    add.f32         %f9, %f3, %f1;
    st.global.f32   [%rd2], %f3;
    ret;
}
)";

inline constexpr const char* kSaxpyHip = R"(
extern "C" __global__ void saxpy(const float* x, float* y, float a, long long n) {
  long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}
)";

// Invalid: `undeclared` is not declared.
inline constexpr const char* kBadHip = R"(
extern "C" __global__ void bad(float* y) {
  y[threadIdx.x] = undeclared;
}
)";

}  // namespace moat::testing
