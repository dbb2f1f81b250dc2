// Internal to the C-like emitters: what differs between OpenCL C and HIP C++.
#pragma once

#include <string_view>

namespace moat::jit::c_emit {

struct Dialect {
  std::string_view name;            // "opencl", "hip"
  std::string_view prelude;         // macros and typedefs the shared helpers use
  std::string_view kernel_prefix;   // before the kernel's name
  std::string_view global_ptr;      // address space of a buffer parameter
  std::string_view local_array;     // declaration prefix of a work-group-local array
  std::string_view local_ptr;       // address space of a pointer into such an array
  std::string_view table_array;     // declaration prefix of a file-scope constant table
  std::string_view restrict_ptr;    // restrict qualifier
  std::string_view barrier;         // a work-group barrier statement
  std::string_view group_id[3], item_id[3], num_groups[3], group_size[3];
  std::string_view math_suffix;     // "" (OpenCL overloads) or "f" (expf, ...)
  std::string_view subgroup_add, subgroup_max, subgroup_min;
  std::string_view subgroup_enable;  // source line that enables sub-group functions, if one is needed
  // Reductions over clusters of n consecutive lanes: name + op ("add", "max", "min"), called (x, n).
  std::string_view clustered_reduce;
  std::string_view clustered_enable;  // source line that enables them, if one is needed
};

const Dialect& opencl_dialect();
const Dialect& hip_dialect();

// Helper functions shared by both dialects (written against the prelude's macros).
std::string_view helpers();

}  // namespace moat::jit::c_emit
