// The launch protocol (one caller at a time, per pool):
//   caller  writes the job (fn, context, n_tasks), resets the task counter and the
//           count of workers that must check out, then publishes the job by storing a
//           new job word = (generation << 16) | participants (seq_cst, so release);
//           wakes sleeping workers only when some are asleep; runs tasks itself; then
//           waits (spin, then futex) until every participating worker checked out.
//   worker  waits (spin, then futex) for the job word to change; if its index is
//           below participants - 1 it takes tasks from the shared counter until none
//           are left, then checks out (pending -= 1, waking the caller if it sleeps).
// A worker reads the job only after acquiring the word that published it, and the
// caller rewrites the job only after acquiring every participant's check-out, so the
// plain job fields never race. Workers not taking part read nothing but the word.
// Sleep/wake uses the Dekker pattern on seq_cst operations: a sleeper announces itself
// (sleepers += 1) before re-checking the word, the caller stores the word before
// reading sleepers, so at least one of them sees the other.
#include "backends/cpu/thread_pool.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <thread>
#include <utility>
#include <vector>

#include "support/error.h"

namespace moat::backends::cpu {

namespace {

constexpr int kMaxThreads = 4096;  // participants live in the low 16 bits of the job word
constexpr auto kSpinBudget = std::chrono::microseconds(100);  // spin before sleeping

static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t) && std::atomic<uint32_t>::is_always_lock_free,
              "futex words must be plain 32-bit atomics");

void futex_wait(std::atomic<uint32_t>* word, uint32_t expected) {
  // Returns at once when *word != expected; spurious wake-ups are handled by callers.
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}

void futex_wake(std::atomic<uint32_t>* word, int count) {
  ::syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, count, nullptr, nullptr, 0);
}

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield" ::: "memory");
#endif
}

// Spins until done() or the spin budget is spent; true when done().
template <class Done>
bool spin_until(Done done) {
  auto start = std::chrono::steady_clock::now();
  for (uint32_t i = 1;; ++i) {
    if (done()) return true;
    cpu_relax();
    if (i % 64 == 0) {
      if (std::chrono::steady_clock::now() - start > kSpinBudget) return false;
      if (i % 1024 == 0) std::this_thread::yield();  // let an oversubscribed machine progress
    }
  }
}

thread_local const void* tl_running_pool = nullptr;  // the pool whose task this thread runs

class PoolImpl final : public ThreadPool {
 public:
  explicit PoolImpl(int threads) : threads_(threads) {
    MOAT_INTERNAL_CHECK(threads >= 1 && threads <= kMaxThreads, "thread pool size ", threads);
    workers_.reserve(static_cast<size_t>(threads - 1));
    for (int i = 0; i < threads - 1; ++i) workers_.emplace_back([this, i] { worker_main(i); });
  }

  ~PoolImpl() override {
    stop_.store(true, std::memory_order_relaxed);
    publish(0);
    for (auto& w : workers_) w.join();
  }

  int threads() const override { return threads_; }

  void run(int64_t n_tasks, TaskFn fn, void* context) override {
    if (n_tasks <= 0) return;
    int participants = n_tasks < threads_ ? static_cast<int>(n_tasks) : threads_;
    if (participants == 1 || tl_running_pool == this) {
      for (int64_t i = 0; i < n_tasks; ++i) fn(context, i);
      return;
    }
    MOAT_INTERNAL_CHECK(!in_use_.exchange(true, std::memory_order_acquire),
                        "ThreadPool::run called from two threads at once");
    job_fn_ = fn;
    job_context_ = context;
    job_tasks_ = n_tasks;
    next_task_.store(0, std::memory_order_relaxed);
    pending_.store(static_cast<uint32_t>(participants - 1), std::memory_order_relaxed);
    publish(participants);
    const void* outer_pool = std::exchange(tl_running_pool, this);
    run_tasks();
    tl_running_pool = outer_pool;
    wait_for_workers();
    in_use_.store(false, std::memory_order_release);
  }

 private:
  void publish(int participants) {
    generation_ += 1;
    job_word_.store((generation_ << 16) | static_cast<uint64_t>(participants), std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) != 0) {
      wake_seq_.fetch_add(1, std::memory_order_seq_cst);
      futex_wake(&wake_seq_, INT_MAX);
    }
  }

  void run_tasks() {
    TaskFn fn = job_fn_;
    void* context = job_context_;
    int64_t n = job_tasks_;
    for (;;) {
      int64_t task = next_task_.fetch_add(1, std::memory_order_relaxed);
      if (task >= n) return;
      fn(context, task);
    }
  }

  void wait_for_workers() {
    if (spin_until([this] { return pending_.load(std::memory_order_acquire) == 0; })) return;
    for (;;) {
      caller_sleeping_.store(1, std::memory_order_seq_cst);
      uint32_t pending = pending_.load(std::memory_order_seq_cst);
      if (pending == 0) break;
      futex_wait(&pending_, pending);
    }
    caller_sleeping_.store(0, std::memory_order_relaxed);
  }

  // The next job word different from `seen` (acquired).
  uint64_t wait_for_job(uint64_t seen) {
    uint64_t word = seen;
    if (spin_until([&] { return (word = job_word_.load(std::memory_order_acquire)) != seen; })) return word;
    for (;;) {
      uint32_t seq = wake_seq_.load(std::memory_order_seq_cst);
      sleepers_.fetch_add(1, std::memory_order_seq_cst);
      word = job_word_.load(std::memory_order_seq_cst);
      if (word == seen) futex_wait(&wake_seq_, seq);
      sleepers_.fetch_sub(1, std::memory_order_relaxed);
      word = job_word_.load(std::memory_order_acquire);
      if (word != seen) return word;
    }
  }

  void worker_main(int index) {
    tl_running_pool = this;
    uint64_t seen = 0;
    for (;;) {
      seen = wait_for_job(seen);
      if (stop_.load(std::memory_order_relaxed)) return;
      int participants = static_cast<int>(seen & 0xffff);
      if (index >= participants - 1) continue;  // not needed for this job
      run_tasks();
      if (pending_.fetch_sub(1, std::memory_order_seq_cst) == 1 && caller_sleeping_.load(std::memory_order_seq_cst))
        futex_wake(&pending_, 1);
    }
  }

  const int threads_;
  std::vector<std::thread> workers_;
  uint64_t generation_ = 0;  // caller only
  std::atomic<bool> in_use_{false};
  std::atomic<bool> stop_{false};

  // The job: written by the caller before publishing, read by participants after.
  alignas(64) std::atomic<uint64_t> job_word_{0};
  TaskFn job_fn_ = nullptr;
  void* job_context_ = nullptr;
  int64_t job_tasks_ = 0;

  alignas(64) std::atomic<int64_t> next_task_{0};
  alignas(64) std::atomic<uint32_t> pending_{0};  // participating workers not yet checked out
  std::atomic<uint32_t> caller_sleeping_{0};
  alignas(64) std::atomic<uint32_t> sleepers_{0};  // workers in (or about to enter) futex_wait
  std::atomic<uint32_t> wake_seq_{0};              // futex word of sleeping workers
};

}  // namespace

std::unique_ptr<ThreadPool> make_thread_pool(int threads) { return std::make_unique<PoolImpl>(threads); }

}  // namespace moat::backends::cpu
