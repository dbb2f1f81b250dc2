#include "backends/gpu/gpu_launch.h"

namespace moat::backends::gpu {

bool check_grid(const Grid& grid, const DeviceProperties& properties, std::string_view kernel) {
  int64_t items = 1;
  for (int d = 0; d < 3; ++d) {
    int64_t max_groups = d == 0 ? kMaxGridX : kMaxGridYZ;
    MOAT_INTERNAL_CHECK(grid.groups[d] >= 0 && grid.groups[d] <= max_groups && grid.items[d] >= 1 &&
                            grid.items[d] <= properties.max_work_group_size,
                        "kernel '", kernel, "': bad grid dimension ", d);
    items *= grid.items[d];
  }
  MOAT_INTERNAL_CHECK(items <= properties.max_work_group_size && grid.local_bytes >= 0 &&
                          grid.local_bytes <= properties.local_memory_bytes,
                      "kernel '", kernel, "': ", items, " threads, ", grid.local_bytes,
                      " shared bytes per block exceed ", properties.info.id, "'s limits");
  return grid.groups[0] != 0 && grid.groups[1] != 0 && grid.groups[2] != 0;
}

}  // namespace moat::backends::gpu
