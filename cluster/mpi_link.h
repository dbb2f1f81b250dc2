// The StageLink of processes started by `mpirun` (Debian's OpenMPI): point-to-point
// messages and the all-to-all sum of expert parallelism, each with a deadline, so that a
// rank that died or hangs makes the others stop with an error naming it instead of
// waiting forever. A rank that fails exits without MPI_Finalize; mpirun then ends the
// job. Only the command line links this (libmpi); the runtime sees runtime/stage_link.h.
#pragma once

#include <memory>

#include "runtime/stage_link.h"

namespace moat::cluster {

struct MpiOptions {
  double timeout_s = 30;  // the longest a rank waits for a peer's message
};

// Initialises MPI (MPI_Init_thread, funneled: only the calling thread talks to MPI).
// UserError when MPI cannot start (e.g. `mpirun` could not reach its daemon). One per
// process; MPI_Finalize when it goes, unless an exception is unwinding (a failed rank
// leaves without it, so that mpirun stops the others).
std::unique_ptr<runtime::StageLink> start_mpi(const MpiOptions& options);

}  // namespace moat::cluster
