#include "cluster/mpi_link.h"

#include <mpi.h>

#include <atomic>
#include <chrono>
#include <climits>
#include <exception>
#include <memory>
#include <thread>
#include <vector>

#include "support/error.h"

namespace moat::cluster {

namespace {

using Clock = std::chrono::steady_clock;

// Tags of the sums, apart from the point-to-point messages': node ids below 2^20 (the
// transfers), 2^20 + node id (rank 0's values, runtime/staged_plan.cpp), 2^21 (the
// command line's agreements).
constexpr int kSumTagBase = 1 << 22;
constexpr int kLargestTag = kSumTagBase * 2;
// How often a rank tells the others it is alive (on a communicator of its own).
constexpr auto kBeat = std::chrono::milliseconds(200);

int64_t now_ns() { return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch()).count(); }

std::string mpi_error(int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  MPI_Error_string(code, text, &length);
  return std::string(text, static_cast<size_t>(length));
}

class MpiLink final : public runtime::StageLink {
 public:
  explicit MpiLink(const MpiOptions& options) : timeout_s_(options.timeout_s) {
    int initialised = 0;
    MPI_Initialized(&initialised);
    if (initialised) user_error("MPI is already initialised in this process");
    int provided = 0;
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS)
      user_error("MPI did not start; run moat under mpirun (Debian: apt install openmpi-bin)");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks_);
    int* tag_ub = nullptr;
    int found = 0;
    MPI_Comm_get_attr(MPI_COMM_WORLD, MPI_TAG_UB, &tag_ub, &found);
    if (found && tag_ub && *tag_ub < kLargestTag)
      user_error("this MPI allows message tags up to ", *tag_ub, " and moat needs ", kLargestTag, "; use Debian's OpenMPI");
    // Liveness: a thread sends a beat to every other rank and takes theirs, so that a
    // wait ends when the awaited rank has gone quiet (died, stopped), never because it
    // computes or compiles for long. Needs MPI_THREAD_MULTIPLE; without it every wait
    // has the plain deadline.
    last_beat_ = std::make_unique<std::atomic<int64_t>[]>(static_cast<size_t>(ranks_));
    for (int r = 0; r < ranks_; ++r) last_beat_[static_cast<size_t>(r)] = now_ns();
    if (provided >= MPI_THREAD_MULTIPLE && ranks_ > 1) {
      MPI_Comm_dup(MPI_COMM_WORLD, &beats_);
      MPI_Comm_set_errhandler(beats_, MPI_ERRORS_RETURN);
      beating_ = std::thread([this] { beat(); });
    }
  }

  ~MpiLink() override {
    stop_beats();
    if (failed_ || std::uncaught_exceptions() > 0) return;  // a failed rank: mpirun ends the job
    if (beats_ != MPI_COMM_NULL) MPI_Comm_free(&beats_);
    MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int ranks() const override { return ranks_; }

  void send(int to, int tag, std::span<const uint8_t> bytes) override {
    MOAT_INTERNAL_CHECK(tag >= 0 && tag < kSumTagBase, "message tag ", tag, " out of range");
    MPI_Request request;
    check(MPI_Isend(bytes.data(), count(bytes.size()), MPI_BYTE, to, tag, MPI_COMM_WORLD, &request), to, "send to");
    wait({&request, 1}, to, "take the bytes this rank sends");
  }

  void receive(int from, int tag, std::span<uint8_t> bytes) override {
    MOAT_INTERNAL_CHECK(tag >= 0 && tag < kSumTagBase, "message tag ", tag, " out of range");
    MPI_Request request;
    check(MPI_Irecv(bytes.data(), count(bytes.size()), MPI_BYTE, from, tag, MPI_COMM_WORLD, &request), from, "receive from");
    MPI_Status status;
    wait({&request, 1}, from, "send the bytes this rank waits for", &status);
    int got = 0;
    MPI_Get_count(&status, MPI_BYTE, &got);
    if (static_cast<size_t>(got) != bytes.size())
      fail(cat("rank ", rank_, ": rank ", from, " sent ", got, " bytes where this rank expects ", bytes.size(),
               "; the ranks run different passes (give every rank the same options)"));
  }

  void sum(int tag, std::span<float> values) override {
    MOAT_INTERNAL_CHECK(tag >= 0 && tag < kSumTagBase, "sum tag ", tag, " out of range");
    if (ranks_ == 1) return;
    std::vector<std::vector<float>> theirs(static_cast<size_t>(ranks_));
    std::vector<MPI_Request> requests;
    const int n = count(values.size_bytes());
    for (int r = 0; r < ranks_; ++r) {
      if (r == rank_) continue;
      theirs[static_cast<size_t>(r)].resize(values.size());
      requests.emplace_back();
      check(MPI_Irecv(theirs[static_cast<size_t>(r)].data(), n, MPI_BYTE, r, kSumTagBase + tag, MPI_COMM_WORLD, &requests.back()), r,
            "receive from");
      requests.emplace_back();
      check(MPI_Isend(values.data(), n, MPI_BYTE, r, kSumTagBase + tag, MPI_COMM_WORLD, &requests.back()), r, "send to");
    }
    wait(requests, -1, "exchange its share of the experts' sum with this rank");
    theirs[static_cast<size_t>(rank_)].assign(values.begin(), values.end());
    for (size_t i = 0; i < values.size(); ++i) {  // in rank order: the same sums on every rank
      float total = 0;
      for (int r = 0; r < ranks_; ++r) total += theirs[static_cast<size_t>(r)][i];
      values[i] = total;
    }
  }

 private:
  static int count(size_t bytes) {
    if (bytes > static_cast<size_t>(INT_MAX)) user_error("a message of ", bytes, " bytes between ranks is over MPI's 2 GiB; lower --batch");
    return static_cast<int>(bytes);
  }

  void check(int code, int peer, const char* what) {
    if (code != MPI_SUCCESS)
      fail(cat("rank ", rank_, ": MPI could not ", what, " rank ", peer, ": ", mpi_error(code), "; is that rank still running?"));
  }

  // Waits for every request, polling (a rank that died never completes one) while the
  // awaited rank (peer; -1: every other) keeps beating; UserError naming it once it has
  // been quiet for the timeout (or, without beats, once the timeout has passed).
  void wait(std::span<MPI_Request> requests, int peer, const char* what, MPI_Status* status = nullptr) {
    const auto start = Clock::now();
    auto pause = std::chrono::microseconds(0);
    const auto quiet_ns = static_cast<int64_t>(timeout_s_ * 1e9);
    while (true) {
      int done = 0;
      const int code = requests.size() == 1 && status ? MPI_Test(&requests[0], &done, status)
                                                      : MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done,
                                                                    MPI_STATUSES_IGNORE);
      if (code != MPI_SUCCESS)
        fail(cat("rank ", rank_, ": a message with ", peer >= 0 ? cat("rank ", peer) : std::string("the other ranks"), " failed: ",
                 mpi_error(code), "; a rank has stopped"));
      if (done) return;
      int quiet = -1;  // a rank awaited that has been quiet for the timeout (-2: one of the others)
      if (beating_.joinable()) {
        for (int r = 0; r < ranks_ && quiet == -1; ++r)
          if (r != rank_ && (peer < 0 || r == peer) && now_ns() - last_beat_[static_cast<size_t>(r)] > quiet_ns) quiet = r;
      } else if (Clock::now() - start > std::chrono::duration<double>(timeout_s_)) {
        quiet = peer >= 0 ? peer : -2;
      }
      if (quiet != -1)
        fail(cat("rank ", rank_, ": ", quiet >= 0 ? cat("rank ", quiet) : std::string("another rank"), " did not ", what, " and ",
                 beating_.joinable() ? "has been silent for " : "did not within ", timeout_s_,
                 " s (--mpi-timeout); it has stopped or hangs (see its output), so this rank stops too"));
      // Short waits first (a decode step exchanges every few hundred microseconds), then
      // sleep so that a waiting rank leaves the cores to the one computing.
      if (pause < std::chrono::microseconds(200)) pause += std::chrono::microseconds(10);
      std::this_thread::sleep_for(pause);
    }
  }

  // Ends the exchanges for good: no MPI call after this (requests left pending may
  // still name the caller's buffers), then UserError.
  [[noreturn]] void fail(const std::string& message) {
    failed_ = true;
    stop_beats();
    user_error(message);
  }

  void stop_beats() {
    stop_ = true;
    if (beating_.joinable()) beating_.join();
  }

  // The beat thread: every kBeat, one byte to every other rank (a send still pending is
  // not repeated) and every beat that arrived taken.
  void beat() {
    std::vector<MPI_Request> sends(static_cast<size_t>(ranks_), MPI_REQUEST_NULL);
    static const uint8_t one = 1;
    uint8_t sink = 0;
    while (!stop_) {
      for (int r = 0; r < ranks_; ++r) {
        if (r == rank_) continue;
        MPI_Request& pending = sends[static_cast<size_t>(r)];
        int done = 1;
        if (pending != MPI_REQUEST_NULL) MPI_Test(&pending, &done, MPI_STATUS_IGNORE);
        if (done) MPI_Isend(&one, 1, MPI_BYTE, r, 0, beats_, &pending);
      }
      for (int arrived = 1; arrived;) {
        MPI_Status status;
        arrived = 0;
        if (MPI_Iprobe(MPI_ANY_SOURCE, 0, beats_, &arrived, &status) != MPI_SUCCESS || !arrived) break;
        MPI_Recv(&sink, 1, MPI_BYTE, status.MPI_SOURCE, 0, beats_, MPI_STATUS_IGNORE);
        last_beat_[static_cast<size_t>(status.MPI_SOURCE)] = now_ns();
      }
      const auto until = Clock::now() + kBeat;
      while (!stop_ && Clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    for (MPI_Request& r : sends)  // a beat a peer never took (it ended first) is dropped
      if (r != MPI_REQUEST_NULL && !failed_) {
        MPI_Cancel(&r);
        MPI_Request_free(&r);
      }
  }

  double timeout_s_;
  int rank_ = 0, ranks_ = 1;
  MPI_Comm beats_ = MPI_COMM_NULL;
  std::unique_ptr<std::atomic<int64_t>[]> last_beat_;  // per rank: when its last beat arrived (ns)
  std::atomic<bool> stop_{false}, failed_{false};
  std::thread beating_;
};

}  // namespace

std::unique_ptr<runtime::StageLink> start_mpi(const MpiOptions& options) { return std::make_unique<MpiLink>(options); }

}  // namespace moat::cluster
