// How the processes of one model hand values to each other (MPI ranks: cluster/mpi_link.h).
// A pass placed over ranks runs the same stages in the same order on every rank; a rank
// runs its own stages and exchanges the values that cross (runtime/staged_plan.h). The
// runtime sees only this interface, so it neither links nor includes MPI.
#pragma once

#include <cstdint>
#include <span>

namespace moat::runtime {

class StageLink {
 public:
  virtual ~StageLink() = default;
  virtual int rank() const = 0;   // this process, 0..ranks()-1
  virtual int ranks() const = 0;
  // Point to point, matched by (peer, tag) in the order sent. UserError naming the peer
  // when it has not taken / sent the bytes within the link's timeout (a rank that died or
  // hangs), so no rank waits forever.
  virtual void send(int to, int tag, std::span<const uint8_t> bytes) = 0;
  virtual void receive(int from, int tag, std::span<uint8_t> bytes) = 0;
  // Every rank's `values` added element by element, in rank order, so that every rank
  // holds the same sums (the combine step of expert parallelism).
  virtual void sum(int tag, std::span<float> values) = 0;
};

}  // namespace moat::runtime
