// A persistent pool of worker threads for the CPU backend: every kernel launch of a
// decode loop goes through parallel_for, so a launch allocates nothing and takes no
// lock; idle workers spin briefly, then sleep on a futex. Tasks are claimed from a
// shared counter and a launch waits only for the claims in progress, never for a
// worker that has not started on it: with another process busy on a core, the
// pool's thread there just takes fewer tasks (protocol: thread_pool.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <type_traits>

namespace moat::backends::cpu {

class ThreadPool {
 public:
  virtual ~ThreadPool() = default;

  // Threads that run tasks, the calling thread included.
  virtual int threads() const = 0;

  // Runs fn(task) once for every task in [0, n_tasks) and returns when all have run;
  // the calling thread runs tasks too. Tasks may run in any order, concurrently.
  // `fn` must not throw (an escaping exception terminates the process). Calls from
  // one thread at a time (the device's stream); a call from inside a task of this pool
  // runs its tasks serially on that thread. n_tasks <= 0: nothing runs.
  template <class Fn>
  void parallel_for(int64_t n_tasks, Fn&& fn) {
    using F = std::remove_reference_t<Fn>;
    run(n_tasks, [](void* context, int64_t task) noexcept { (*static_cast<F*>(context))(task); },
        const_cast<void*>(static_cast<const void*>(&fn)));
  }

  using TaskFn = void (*)(void* context, int64_t task) noexcept;
  virtual void run(int64_t n_tasks, TaskFn fn, void* context) = 0;
};

// `threads` >= 1 threads in all: threads - 1 workers plus the caller.
std::unique_ptr<ThreadPool> make_thread_pool(int threads);

}  // namespace moat::backends::cpu
