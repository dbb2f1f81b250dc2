#include "cluster/mpi_link.h"

#include <mpi.h>

#include <chrono>
#include <climits>
#include <exception>
#include <thread>
#include <vector>

#include "support/error.h"

namespace moat::cluster {

namespace {

using Clock = std::chrono::steady_clock;

// Tags of the sums, apart from the point-to-point messages' (node ids).
constexpr int kSumTagBase = 1 << 22;

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
    if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
      user_error("MPI did not start; run moat under mpirun (Debian: apt install openmpi-bin)");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
    MPI_Comm_size(MPI_COMM_WORLD, &ranks_);
  }

  ~MpiLink() override {
    if (std::uncaught_exceptions() > 0) return;  // a failed rank: mpirun ends the job
    MPI_Finalize();
  }

  int rank() const override { return rank_; }
  int ranks() const override { return ranks_; }
  uint64_t bytes_sent() const override { return sent_; }

  void send(int to, int tag, std::span<const uint8_t> bytes) override {
    MPI_Request request;
    check(MPI_Isend(bytes.data(), count(bytes.size()), MPI_BYTE, to, tag, MPI_COMM_WORLD, &request), to, "send to");
    wait({&request, 1}, to, "take the bytes this rank sends");
    sent_ += bytes.size();
  }

  void receive(int from, int tag, std::span<uint8_t> bytes) override {
    MPI_Request request;
    check(MPI_Irecv(bytes.data(), count(bytes.size()), MPI_BYTE, from, tag, MPI_COMM_WORLD, &request), from, "receive from");
    wait({&request, 1}, from, "send the bytes this rank waits for");
  }

  void sum(int tag, std::span<float> values) override {
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
      sent_ += values.size_bytes();
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

  void check(int code, int peer, const char* what) const {
    if (code != MPI_SUCCESS)
      user_error("rank ", rank_, ": MPI could not ", what, " rank ", peer, ": ", mpi_error(code), "; is that rank still running?");
  }

  // Waits for every request, polling (a rank that died never completes one) until the
  // deadline; then UserError naming the peer (-1: any of the others).
  void wait(std::span<MPI_Request> requests, int peer, const char* what) const {
    const auto deadline = Clock::now() + std::chrono::duration<double>(timeout_s_);
    auto pause = std::chrono::microseconds(0);
    while (true) {
      int done = 0;
      const int code = MPI_Testall(static_cast<int>(requests.size()), requests.data(), &done, MPI_STATUSES_IGNORE);
      if (code != MPI_SUCCESS)
        user_error("rank ", rank_, ": a message with ", peer >= 0 ? cat("rank ", peer) : std::string("the other ranks"), " failed: ",
                   mpi_error(code), "; a rank has stopped");
      if (done) return;
      if (Clock::now() > deadline) {
        for (MPI_Request& r : requests)
          if (r != MPI_REQUEST_NULL) MPI_Cancel(&r);
        user_error("rank ", rank_, ": ", peer >= 0 ? cat("rank ", peer) : std::string("another rank"), " did not ", what,
                   " within ", timeout_s_, " s (--mpi-timeout); it has stopped or hangs (see its output), so this rank stops too");
      }
      // Short waits first (a decode step exchanges every few hundred microseconds), then
      // sleep so that a waiting rank leaves the cores to the one computing.
      if (pause < std::chrono::microseconds(200)) pause += std::chrono::microseconds(10);
      std::this_thread::sleep_for(pause);
    }
  }

  double timeout_s_;
  int rank_ = 0, ranks_ = 1;
  uint64_t sent_ = 0;
};

}  // namespace

std::unique_ptr<runtime::StageLink> start_mpi(const MpiOptions& options) { return std::make_unique<MpiLink>(options); }

}  // namespace moat::cluster
