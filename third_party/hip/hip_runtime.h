// The few types, constants and entry points of AMD's HIP runtime (libamdhip64) and of
// hiprtc, its run-time compiler, that backends/hip loads with dlopen. Written for
// moatless from HIP's public API documentation: it only declares what we call; nothing
// here is AMD's code, and nothing links against libamdhip64 (the functions are used
// only in decltype, for the types of the pointers that dlsym fills).
//
// Valid for ROCm 5.0 and later: the device attribute numbering changed in 5.0 and has
// been stable since. hipGetDeviceProperties (the unversioned symbol) keeps the ROCm 5
// struct layout in ROCm 6 as well (ROCm 6 headers call hipGetDevicePropertiesR0600).
#pragma once

#include <cstddef>

namespace moat::hip_runtime {

using hipError_t = int;  // 0: hipSuccess
using hipDevice_t = int;
using hipDeviceptr_t = void*;
using hipModule_t = struct ihipModule_t*;
using hipFunction_t = struct ihipModuleSymbol_t*;
using hipStream_t = struct ihipStream_t*;
using hipEvent_t = struct ihipEvent_t*;
using hipDeviceAttribute_t = int;

constexpr hipError_t hipSuccess = 0;
constexpr hipError_t hipErrorOutOfMemory = 2;
constexpr hipError_t hipErrorNoDevice = 100;

constexpr hipDeviceAttribute_t hipDeviceAttributeMaxThreadsPerBlock = 56;
constexpr hipDeviceAttribute_t hipDeviceAttributeMemoryBusWidth = 59;   // bits
constexpr hipDeviceAttribute_t hipDeviceAttributeMemoryClockRate = 60;  // peak, kHz
constexpr hipDeviceAttribute_t hipDeviceAttributeMultiprocessorCount = 63;
constexpr hipDeviceAttribute_t hipDeviceAttributeMaxSharedMemoryPerBlock = 74;  // bytes
constexpr hipDeviceAttribute_t hipDeviceAttributeWarpSize = 87;

// The leading fields of hipGetDeviceProperties' struct (ROCm 5 layout, "R0000"), up to
// the architecture name; the whole struct is larger (callers pass a bigger buffer).
struct hipDevicePropPrefix {
  char name[256];
  size_t totalGlobalMem;
  size_t sharedMemPerBlock;
  int regsPerBlock;
  int warpSize;
  int maxThreadsPerBlock;
  int maxThreadsDim[3];
  int maxGridSize[3];
  int clockRate;
  int memoryClockRate;
  int memoryBusWidth;
  size_t totalConstMem;
  int major;
  int minor;
  int multiProcessorCount;
  int l2CacheSize;
  int maxThreadsPerMultiProcessor;
  int computeMode;
  int clockInstructionRate;
  unsigned arch;  // hipDeviceArch_t: a 32-bit set of feature bits
  int concurrentKernels;
  int pciDomainID;
  int pciBusID;
  int pciDeviceID;
  size_t maxSharedMemoryPerMultiProcessor;
  int isMultiGpuBoard;
  int canMapHostMemory;
  int gcnArch;
  char gcnArchName[256];  // "gfx90a:sramecc+:xnack-"
};
static_assert(offsetof(hipDevicePropPrefix, gcnArchName) == 396, "the ROCm 5 layout of hipDeviceProp_t");
constexpr size_t kHipDevicePropBytes = 4096;  // more than the whole struct (about 800 bytes)

extern "C" {
hipError_t hipInit(unsigned int flags);
hipError_t hipDriverGetVersion(int* version);
hipError_t hipRuntimeGetVersion(int* version);
const char* hipGetErrorName(hipError_t error);
const char* hipGetErrorString(hipError_t error);

hipError_t hipGetDeviceCount(int* count);
hipError_t hipSetDevice(int ordinal);
hipError_t hipDeviceGetName(char* name, int length, hipDevice_t device);
hipError_t hipDeviceGetAttribute(int* value, hipDeviceAttribute_t attribute, int ordinal);
hipError_t hipDeviceTotalMem(size_t* bytes, hipDevice_t device);
hipError_t hipGetDeviceProperties(void* properties, int ordinal);  // properties: see hipDevicePropPrefix

hipError_t hipModuleLoadData(hipModule_t* module, const void* image);
hipError_t hipModuleUnload(hipModule_t module);
hipError_t hipModuleGetFunction(hipFunction_t* function, hipModule_t module, const char* name);

hipError_t hipMalloc(void** pointer, size_t bytes);
hipError_t hipFree(void* pointer);
hipError_t hipMemcpyHtoDAsync(hipDeviceptr_t dst, void* src, size_t bytes, hipStream_t stream);
hipError_t hipMemcpyDtoHAsync(void* dst, hipDeviceptr_t src, size_t bytes, hipStream_t stream);

hipError_t hipStreamCreate(hipStream_t* stream);
hipError_t hipStreamDestroy(hipStream_t stream);
hipError_t hipStreamSynchronize(hipStream_t stream);
hipError_t hipEventCreate(hipEvent_t* event);
hipError_t hipEventRecord(hipEvent_t event, hipStream_t stream);
hipError_t hipEventSynchronize(hipEvent_t event);
hipError_t hipEventElapsedTime(float* milliseconds, hipEvent_t start, hipEvent_t end);
hipError_t hipEventDestroy(hipEvent_t event);

// grid_*: blocks; block_*: threads per block; params: one pointer to each argument's
// value, in the kernel's parameter order.
hipError_t hipModuleLaunchKernel(hipFunction_t function, unsigned int grid_x, unsigned int grid_y,
                                 unsigned int grid_z, unsigned int block_x, unsigned int block_y,
                                 unsigned int block_z, unsigned int shared_bytes, hipStream_t stream, void** params,
                                 void** extra);
}

// hiprtc: in libhiprtc.so (ROCm 6) or in libamdhip64 itself (ROCm 5, Debian).
using hiprtcResult = int;  // 0: HIPRTC_SUCCESS
using hiprtcProgram = struct _hiprtcProgram*;
constexpr hiprtcResult HIPRTC_SUCCESS = 0;

extern "C" {
hiprtcResult hiprtcVersion(int* major, int* minor);
const char* hiprtcGetErrorString(hiprtcResult result);
hiprtcResult hiprtcCreateProgram(hiprtcProgram* program, const char* source, const char* name, int num_headers,
                                 const char** headers, const char** include_names);
hiprtcResult hiprtcCompileProgram(hiprtcProgram program, int num_options, const char** options);
hiprtcResult hiprtcGetProgramLogSize(hiprtcProgram program, size_t* bytes);  // including the NUL
hiprtcResult hiprtcGetProgramLog(hiprtcProgram program, char* log);
hiprtcResult hiprtcGetCodeSize(hiprtcProgram program, size_t* bytes);
hiprtcResult hiprtcGetCode(hiprtcProgram program, char* code);
hiprtcResult hiprtcDestroyProgram(hiprtcProgram* program);
}

}  // namespace moat::hip_runtime
