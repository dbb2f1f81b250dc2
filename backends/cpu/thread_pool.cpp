// The launch protocol (one caller at a time, per pool). A job of n_tasks tasks is cut
// into n_claims <= kMaxClaims claims of `chunk` consecutive tasks; a thread takes a
// claim with fetch_add on the claim word = (n_claims << 32) | next, and holds the
// claim while it runs it.
//   caller  writes the job (fn, context, n_tasks, chunk), then publishes it by storing
//           the claim word = n_claims << 32 (seq_cst, so release); wakes sleeping
//           workers only when some are asleep; takes claims and runs them until none
//           are left; then adds the number of claims workers took (n_claims minus its
//           own) to `unfinished` and waits (spin, then futex) until it reads 0.
//   worker  waits (spin, then futex) until the claim word shows a claim left (next <
//           n_claims), then takes claims (fetch_add, acquire) until none are left,
//           counting each one it ran out of `unfinished` (fetch_sub, release) and
//           waking the caller when its fetch_sub reached 0 while the caller sleeps.
// So the caller waits for claims in progress, never for a worker that has not started
// on the job: a worker whose core is busy with another process takes no claim and
// costs the launch nothing. `unfinished` is 0 between jobs; it dips below 0 (mod 2^32)
// while workers finish before the caller has added its count, so it can reach 0 from
// 1 only on the job's last finish.
// A thread reads the job only while it holds a claim taken from the word that
// published the job (the fetch_add reads the publish or a later fetch_add, which
// continues its release sequence, so it acquires the job fields); the caller rewrites
// the job only after acquiring every worker claim's finish, so the plain job fields
// never race. A fetch_add finding next >= n_claims takes nothing; each thread makes at
// most one such per job before waiting for a new word, so next stays far below 2^32.
// A fetch_add by a worker that read the word during an earlier job lands on the
// current word (atomic read-modify-write), and what it returns is a valid claim of the
// current job or nothing.
// Sleep/wake uses the Dekker pattern on seq_cst operations: a sleeper announces itself
// (sleepers += 1) before re-checking the word, the caller stores the word before
// reading sleepers, so at least one of them sees the other; likewise the caller sets
// caller_sleeping before re-reading `unfinished`, a worker decrements `unfinished`
// before reading caller_sleeping.
#include "backends/cpu/thread_pool.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <climits>
#include <thread>
#include <utility>
#include <vector>

#include "support/error.h"

namespace moat::backends::cpu {

namespace {

constexpr int kMaxThreads = 4096;
constexpr int64_t kMaxClaims = int64_t{1} << 20;  // claims per job (more tasks: several per claim)
// Spin before sleeping. A worker spins across the short gaps between the launches of
// a decode step; the caller spins for the last claims in progress, which normally end
// within one task, and sleeps sooner, so a worker preempted while holding a claim can
// be moved to the caller's idle core.
constexpr auto kWorkerSpin = std::chrono::microseconds(100);
constexpr auto kCallerSpin = std::chrono::microseconds(30);

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

// Spins until done() or `budget` is spent; true when done().
template <class Done>
bool spin_until(std::chrono::microseconds budget, Done done) {
  auto start = std::chrono::steady_clock::now();
  for (uint32_t i = 1;; ++i) {
    if (done()) return true;
    cpu_relax();
    if (i % 64 == 0) {
      if (std::chrono::steady_clock::now() - start > budget) return false;
      if (i % 1024 == 0) std::this_thread::yield();  // let an oversubscribed machine progress
    }
  }
}

constexpr uint64_t claim_word(int64_t n_claims, int64_t next) {
  return (static_cast<uint64_t>(n_claims) << 32) | static_cast<uint64_t>(next);
}
constexpr int64_t claims_of(uint64_t word) { return static_cast<int64_t>(word >> 32); }
constexpr int64_t next_of(uint64_t word) { return static_cast<int64_t>(word & 0xffffffffu); }
constexpr bool claim_left(uint64_t word) { return next_of(word) < claims_of(word); }

thread_local const void* tl_running_pool = nullptr;  // the pool whose task this thread runs

class PoolImpl final : public ThreadPool {
 public:
  explicit PoolImpl(int threads) : threads_(threads) {
    MOAT_INTERNAL_CHECK(threads >= 1 && threads <= kMaxThreads, "thread pool size ", threads);
    workers_.reserve(static_cast<size_t>(threads - 1));
    for (int i = 0; i < threads - 1; ++i) workers_.emplace_back([this] { worker_main(); });
  }

  ~PoolImpl() override {
    stop_.store(true, std::memory_order_seq_cst);
    wake_workers();
    for (auto& w : workers_) w.join();
  }

  int threads() const override { return threads_; }

  void run(int64_t n_tasks, TaskFn fn, void* context) override {
    if (n_tasks <= 0) return;
    if (threads_ == 1 || n_tasks == 1 || tl_running_pool == this) {
      for (int64_t i = 0; i < n_tasks; ++i) fn(context, i);
      return;
    }
    MOAT_INTERNAL_CHECK(!in_use_.exchange(true, std::memory_order_acquire),
                        "ThreadPool::run called from two threads at once");
    const int64_t n_claims = std::min(n_tasks, kMaxClaims);
    job_fn_ = fn;
    job_context_ = context;
    job_tasks_ = n_tasks;
    job_chunk_ = (n_tasks + n_claims - 1) / n_claims;
    claim_word_.store(claim_word(n_claims, 0), std::memory_order_seq_cst);
    wake_workers();
    const void* outer_pool = std::exchange(tl_running_pool, this);
    int64_t mine = 0;
    for (;;) {
      uint64_t word = claim_word_.fetch_add(1, std::memory_order_relaxed);  // the caller wrote the job
      if (!claim_left(word)) break;
      run_claim(next_of(word));
      mine += 1;
    }
    tl_running_pool = outer_pool;
    wait_for_workers(static_cast<uint32_t>(n_claims - mine));
    in_use_.store(false, std::memory_order_release);
  }

 private:
  // Runs the tasks of one claim; the caller holds it.
  void run_claim(int64_t claim) {
    const int64_t begin = claim * job_chunk_;
    const int64_t end = std::min(job_tasks_, begin + job_chunk_);
    for (int64_t task = begin; task < end; ++task) job_fn_(job_context_, task);
  }

  // After storing the claim word or stop_ (seq_cst).
  void wake_workers() {
    if (sleepers_.load(std::memory_order_seq_cst) != 0) {
      wake_seq_.fetch_add(1, std::memory_order_seq_cst);
      futex_wake(&wake_seq_, INT_MAX);
    }
  }

  void wait_for_workers(uint32_t worker_claims) {
    if (worker_claims == 0) return;
    uint32_t left = unfinished_.fetch_add(worker_claims, std::memory_order_acq_rel) + worker_claims;
    if (left == 0) return;
    if (spin_until(kCallerSpin, [this] { return unfinished_.load(std::memory_order_acquire) == 0; })) return;
    for (;;) {
      caller_sleeping_.store(1, std::memory_order_seq_cst);
      left = unfinished_.load(std::memory_order_seq_cst);
      if (left == 0) break;
      futex_wait(&unfinished_, left);
    }
    caller_sleeping_.store(0, std::memory_order_relaxed);
  }

  // Until the claim word shows a claim left or the pool stops; false when stopping.
  bool wait_for_claim() {
    auto ready = [this] { return claim_left(claim_word_.load(std::memory_order_relaxed)) || stop_.load(std::memory_order_relaxed); };
    if (!spin_until(kWorkerSpin, ready)) {
      for (;;) {
        uint32_t seq = wake_seq_.load(std::memory_order_seq_cst);
        sleepers_.fetch_add(1, std::memory_order_seq_cst);
        bool go = claim_left(claim_word_.load(std::memory_order_seq_cst)) || stop_.load(std::memory_order_seq_cst);
        if (!go) futex_wait(&wake_seq_, seq);
        sleepers_.fetch_sub(1, std::memory_order_relaxed);
        if (go || ready()) break;
      }
    }
    return !stop_.load(std::memory_order_relaxed);
  }

  void worker_main() {
    tl_running_pool = this;
    while (wait_for_claim()) {
      for (;;) {
        uint64_t word = claim_word_.fetch_add(1, std::memory_order_acquire);
        if (!claim_left(word)) break;
        run_claim(next_of(word));
        if (unfinished_.fetch_sub(1, std::memory_order_seq_cst) == 1 &&
            caller_sleeping_.load(std::memory_order_seq_cst) != 0)
          futex_wake(&unfinished_, 1);
      }
    }
  }

  const int threads_;
  std::vector<std::thread> workers_;
  std::atomic<bool> in_use_{false};
  std::atomic<bool> stop_{false};

  // The job: written by the caller before publishing, read by claim holders.
  TaskFn job_fn_ = nullptr;
  void* job_context_ = nullptr;
  int64_t job_tasks_ = 0;
  int64_t job_chunk_ = 1;  // tasks per claim

  alignas(64) std::atomic<uint64_t> claim_word_{0};  // (n_claims << 32) | next claim
  alignas(64) std::atomic<uint32_t> unfinished_{0};  // worker claims taken but not finished (see above)
  std::atomic<uint32_t> caller_sleeping_{0};
  alignas(64) std::atomic<uint32_t> sleepers_{0};  // workers in (or about to enter) futex_wait
  std::atomic<uint32_t> wake_seq_{0};              // futex word of sleeping workers
};

}  // namespace

std::unique_ptr<ThreadPool> make_thread_pool(int threads) { return std::make_unique<PoolImpl>(threads); }

}  // namespace moat::backends::cpu
