// Where the time of a run goes, kernel by kernel (`moat bench --profile`). An executor
// that profiles synchronises its stream before and after every launch and times each on
// the host clock, so a profiled run is slower than a plain one: use it for shares, not
// for throughput. (CUDA: cuEventElapsedTime would spare the host round trip; the same
// host timer serves every backend here.)
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace moat::runtime {

struct KernelTime {
  std::string name;      // the Kernel IR kernel's name and the weights it reads (executor.h)
  int64_t launches = 0;
  double total_ms = 0;   // milliseconds, summed over launches
};

class KernelProfile {
 public:
  void add(const std::string& kernel, double ms);
  // Every kernel seen, largest total first.
  std::vector<KernelTime> by_time() const;
  double total_ms() const;
  int64_t launches() const;

 private:
  std::map<std::string, KernelTime> kernels_;
};

// While one is alive, every Executor::run on this thread that was not given a profile
// of its own records into `profile` (a Session builds its executors itself; this is how
// a profile reaches them). Scopes nest; the innermost wins.
class ProfileScope {
 public:
  explicit ProfileScope(KernelProfile& profile);
  ~ProfileScope();
  ProfileScope(const ProfileScope&) = delete;
  ProfileScope& operator=(const ProfileScope&) = delete;

 private:
  KernelProfile* previous_;
};

// The innermost ProfileScope's profile on this thread; nullptr when none.
KernelProfile* active_profile();

}  // namespace moat::runtime
