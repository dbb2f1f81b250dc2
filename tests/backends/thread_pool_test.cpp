// The CPU backend's thread pool on its own: every task runs once, a launch's writes are
// visible to the next, nested launches run serially, and all of it holds with more
// threads than CPUs and with another thread busy on the CPUs the pool runs on.
#include <doctest/doctest.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <thread>
#include <vector>

#include "backends/cpu/cpu_topology.h"
#include "backends/cpu/thread_pool.h"

using namespace moat::backends;

namespace {

int available_cpus() { return std::max(1, cpu::available_host_cpus().logical); }

// A thread that spins until destroyed: another process's busy loop, in miniature.
class BusyThread {
 public:
  BusyThread()
      : thread_([this] {
          while (!stop_.load(std::memory_order_relaxed)) {
          }
        }) {}
  ~BusyThread() {
    stop_.store(true, std::memory_order_relaxed);
    thread_.join();
  }

 private:
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

// `launches` launches of 1..max_tasks tasks, each task adding 1 to its slot of plain
// memory: a task reads what the previous launch wrote, so each launch's writes must be
// visible to the next, whichever threads ran them. True when every slot holds the
// number of launches that covered it.
bool launches_add_up(cpu::ThreadPool& pool, int launches, int max_tasks) {
  std::vector<int64_t> slots(static_cast<size_t>(max_tasks), 0);
  std::vector<int64_t> expected(slots.size(), 0);
  for (int launch = 0; launch < launches; ++launch) {
    int64_t n = 1 + launch % max_tasks;
    pool.parallel_for(n, [&](int64_t task) { slots[static_cast<size_t>(task)] += 1; });
    for (int64_t task = 0; task < n; ++task) expected[static_cast<size_t>(task)] += 1;
  }
  return slots == expected;
}

}  // namespace

TEST_CASE("thread pool: every task runs exactly once") {
  for (int threads : {1, 2, 3, 8}) {
    auto pool = cpu::make_thread_pool(threads);
    CHECK(pool->threads() == threads);
    for (int64_t n : {0, 1, 2, 3, 7, 64, 1000, 100000}) {
      std::vector<std::atomic<int>> runs(static_cast<size_t>(n));
      pool->parallel_for(n, [&](int64_t task) { runs[static_cast<size_t>(task)].fetch_add(1); });
      int64_t wrong = 0;
      for (auto& r : runs) wrong += r.load() != 1;
      CHECK_MESSAGE(wrong == 0, "threads ", threads, " n_tasks ", n);
    }
    pool->parallel_for(-5, [&](int64_t) { FAIL("no task may run"); });
  }
}

TEST_CASE("thread pool: many launches in a row, with the caller's writes visible") {
  for (int threads : {2, 4}) {
    auto pool = cpu::make_thread_pool(threads);
    std::vector<int64_t> data(64, 0);  // plain memory: each launch's writes must be visible to the next
    for (int launch = 0; launch < 20000; ++launch) {
      int64_t n = 1 + launch % 64;
      pool->parallel_for(n, [&](int64_t task) { data[static_cast<size_t>(task)] += 1; });
    }
    int64_t total = 0;
    for (int64_t v : data) total += v;
    int64_t expected = 0;
    for (int launch = 0; launch < 20000; ++launch) expected += 1 + launch % 64;
    CHECK(total == expected);
    CHECK(data[0] == 20000);
  }
}

TEST_CASE("thread pool: a launch from inside a task runs serially, idle workers sleep and wake") {
  auto pool = cpu::make_thread_pool(3);
  std::atomic<int64_t> inner{0};
  pool->parallel_for(6, [&](int64_t) { pool->parallel_for(10, [&](int64_t) { inner.fetch_add(1); }); });
  CHECK(inner.load() == 60);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));  // past the spin budget: workers sleep
  std::atomic<int64_t> count{0};
  pool->parallel_for(1000, [&](int64_t) { count.fetch_add(1); });
  CHECK(count.load() == 1000);
}

TEST_CASE("thread pool: a worker takes tasks, also after sleeping") {
  // Two tasks that each wait until the other has started can only finish when a
  // worker runs one of them while the caller runs the other.
  auto pool = cpu::make_thread_pool(2);
  for (int round = 0; round < 3; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(round * 5));  // 5 ms: past the spin budget, asleep
    std::atomic<int> started{0};
    std::atomic<int> threads_seen{0};
    pool->parallel_for(2, [&](int64_t) {
      started.fetch_add(1);
      while (started.load() < 2) std::this_thread::yield();
      threads_seen.fetch_add(1);
    });
    CHECK(threads_seen.load() == 2);
  }
}

TEST_CASE("thread pool: more threads than CPUs, many small launches") {
  const int threads = std::min(4 * available_cpus(), 32);
  auto pool = cpu::make_thread_pool(threads);
  CHECK(launches_add_up(*pool, 20000, 3 * threads));
}

TEST_CASE("thread pool: another thread busy on every CPU") {
  std::vector<std::unique_ptr<BusyThread>> busy;
  for (int i = 0; i < available_cpus(); ++i) busy.push_back(std::make_unique<BusyThread>());
  for (int threads : {2, available_cpus() + 1}) {
    auto pool = cpu::make_thread_pool(threads);
    CHECK(launches_add_up(*pool, 5000, 4 * threads));
  }
}

TEST_CASE("thread pool: one CPU, a busy thread on it, four pool threads") {
  // The pool's threads and a busy thread share one CPU (affinity is inherited by the
  // threads the pinned thread creates): workers are preempted at any point, in a task
  // or between launches.
  std::vector<int> cpus = cpu::affinity_cpus();
  REQUIRE(!cpus.empty());
  bool pinned_ok = false, added_up = false;
  std::thread pinned([&] {
    cpu_set_t one;
    CPU_ZERO(&one);
    CPU_SET(cpus.front(), &one);
    pinned_ok = ::sched_setaffinity(0, sizeof(one), &one) == 0;
    BusyThread busy;
    auto pool = cpu::make_thread_pool(4);
    added_up = launches_add_up(*pool, 2000, 16);
  });
  pinned.join();
  REQUIRE(pinned_ok);
  CHECK(added_up);
}

TEST_CASE("thread pool: nested launches run on the task's thread, with more threads than CPUs") {
  const int threads = std::min(2 * available_cpus() + 1, 16);
  auto pool = cpu::make_thread_pool(threads);
  std::vector<std::atomic<int64_t>> inner_runs(static_cast<size_t>(50 * 7));
  std::atomic<int64_t> elsewhere{0};  // inner tasks that ran on another thread than their outer task
  for (int round = 0; round < 200; ++round) {
    pool->parallel_for(50, [&](int64_t outer) {
      const std::thread::id self = std::this_thread::get_id();
      pool->parallel_for(7, [&](int64_t inner) {
        inner_runs[static_cast<size_t>(outer * 7 + inner)].fetch_add(1);
        if (std::this_thread::get_id() != self) elsewhere.fetch_add(1);
      });
    });
  }
  int64_t wrong = 0;
  for (auto& runs : inner_runs) wrong += runs.load() != 200;
  CHECK(wrong == 0);
  CHECK(elsewhere.load() == 0);
}

TEST_CASE("thread pool: pools made and destroyed between launches") {
  // Destruction wakes sleeping, spinning and just-finished workers alike.
  int ok = 0;
  for (int round = 0; round < 200; ++round) {
    auto pool = cpu::make_thread_pool(2 + round % 5);
    if (round % 3 == 0) ok += launches_add_up(*pool, 1 + round % 4, 9);
    else ok += 1;
    if (round % 50 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK(ok == 200);
}

TEST_CASE("thread pool: tasks of very different lengths") {
  auto pool = cpu::make_thread_pool(std::min(available_cpus() + 1, 8));
  std::vector<int64_t> sums(97, 0);
  for (int launch = 0; launch < 300; ++launch) {
    pool->parallel_for(97, [&](int64_t task) {
      int64_t spins = (task * 7919 + launch) % 13 == 0 ? 20000 : 10;  // a few long tasks per launch
      int64_t acc = 0;
      for (int64_t i = 0; i < spins; ++i) acc += i & 1;
      sums[static_cast<size_t>(task)] += acc;
    });
  }
  int64_t expected = 0, got = 0;
  for (int launch = 0; launch < 300; ++launch)
    for (int64_t task = 0; task < 97; ++task) expected += ((task * 7919 + launch) % 13 == 0 ? 20000 : 10) / 2;
  for (int64_t s : sums) got += s;
  CHECK(got == expected);
}

TEST_CASE("thread pool: more tasks than claims, several tasks per claim") {
  // A job holds at most 2^20 claims; beyond that each claim runs consecutive tasks.
  auto pool = cpu::make_thread_pool(3);
  for (int64_t n : {(int64_t{1} << 20) - 1, int64_t{1} << 20, (int64_t{1} << 20) + 1, int64_t{3000007}}) {
    std::vector<uint8_t> runs(static_cast<size_t>(n), 0);  // each task writes only its own byte
    pool->parallel_for(n, [&](int64_t task) { runs[static_cast<size_t>(task)] += 1; });
    CHECK_MESSAGE(std::count(runs.begin(), runs.end(), uint8_t{1}) == n, "n_tasks ", n);
  }
}
