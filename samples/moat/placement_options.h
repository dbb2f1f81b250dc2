// The options that place one model on several devices of this process, as `moat run`,
// `perplexity` and `serve` read them:
//   --device A,B,...          the devices, in layer order (the first holds what no layer claims)
//   --split layers[:R1,R2..]  contiguous layers per device in proportion R1:R2:... (default:
//                             equal shares to the devices other than --moe-device's; the
//                             default whenever --device lists several)
//   --moe-device ID           the routed experts on ID (added to the devices if not listed)
//   --n-moe-device N          only the first N layers' routed experts there
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "backends/device.h"
#include "runtime/placement.h"
#include "runtime/stage_link.h"
#include "runtime/session.h"
#include "samples/moat/args.h"

namespace moat::cli {

struct DevicePlacement {
  std::vector<std::string> ids;  // devices to open, in the session's order
  runtime::PlacementSpec spec;
};

// The devices and placement the options ask for, for a model of `layers` decoder layers.
// UserError naming the option for a device listed twice, a bad ratio list, --split or
// --n-moe-device without what they apply to.
DevicePlacement placement_options(const ParsedArgs& args, int64_t layers);
// The same for the devices `ids` (moat bench: one entry "opencl:0+cpu" of its --device
// list). Without --split the layers go in equal shares to the devices other than
// --moe-device's; --moe-device not among them is added, with no layers.
DevicePlacement placement_for(std::vector<std::string> ids, const ParsedArgs& args, int64_t layers);

// "cpu: layers 0-1 (2.1 MiB weights, 0.5 MiB cache) | opencl:0: layers 2-3, routed experts
// (...) | moved between devices: 4096 bytes per token": what `moat run` prints when the
// session spans several devices (plus the fallbacks, if any).
std::string placement_report(const runtime::Session& session);

// --mpi pipeline|expert under mpirun (with --mpi-timeout S): MPI started, this rank's
// device opened (the one --device, or the rank-th of a list), standard output silenced
// on ranks above 0.
struct RankPlacement {
  std::unique_ptr<runtime::StageLink> link;
  std::string mode;                          // "pipeline" or "expert"
  std::unique_ptr<backends::Device> device;  // this rank's
  DevicePlacement placement;                 // one id per rank; pipeline: the layer split over ranks (--split)
  // What the session is given: pipeline, one slot per rank (null but this rank's);
  // expert, this rank's device.
  std::vector<backends::Device*> session_devices() const;
  runtime::SessionOptions::Across across() const {
    return mode == "expert" ? runtime::SessionOptions::Across::expert : runtime::SessionOptions::Across::pipeline;
  }
};
RankPlacement start_ranks(const ParsedArgs& args, int64_t layers, const backends::CpuOptions& cpu);

// `options` with the placement options inserted after "-m" (--device ID[,ID...],
// --split, --moe-device, --n-moe-device; with `mpi` also --mpi and --mpi-timeout): the
// commands that open a model through run_setup.h list them alike.
std::vector<OptionSpec> with_placement_options(std::vector<OptionSpec> options, bool mpi);

// "layers" or "layers:3,1": one share per device of `devices` (equal without ratios).
std::vector<double> layer_shares(const std::string& split, size_t devices);

}  // namespace moat::cli
