#include "samples/moat/progress.h"

#include <unistd.h>

#include <cstdio>

namespace moat::cli {

namespace {

constexpr int kBarWidth = 30;  // characters between the brackets

// "compile" -> "kernels": what a stage counts.
const char* unit_of(const std::string& stage) {
  if (stage == "compile") return "kernels";
  if (stage == "upload") return "weights";
  if (stage == "warm-up") return "passes";
  if (stage == "score") return "windows";
  return "steps";
}

}  // namespace

ProgressBar::ProgressBar() : terminal_(isatty(STDERR_FILENO) == 1) {}

ProgressBar::~ProgressBar() { clear(); }

void ProgressBar::update(const std::string& stage, int64_t done, int64_t total) {
  if (!enabled_ || total <= 0) return;
  if (terminal_) draw_bar(stage, done, total);
  else log_line(stage, done, total);
}

void ProgressBar::log_line(const std::string& stage, int64_t done, int64_t total) {
  const auto now = std::chrono::steady_clock::now();
  if (stage != phase_ || done < phase_done_) {
    end_line();
    phase_ = stage;
    phase_start_ = now;
  }
  phase_done_ = done;
  if (!line_open_) {
    std::fprintf(stderr, "moat: %s %lld %s ... ", stage.c_str(), static_cast<long long>(total), unit_of(stage));
    std::fflush(stderr);
    line_open_ = true;
  }
  if (done >= total) end_line();
}

void ProgressBar::end_line() {
  if (line_open_) {
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - phase_start_).count();
    std::fprintf(stderr, "done in %.1f s\n", seconds);
    std::fflush(stderr);
  }
  line_open_ = false;
  phase_.clear();
  phase_done_ = 0;
}

void ProgressBar::draw_bar(const std::string& stage, int64_t done, int64_t total) {
  const auto now = std::chrono::steady_clock::now();
  if (shown_ && done < total && now - last_draw_ < std::chrono::milliseconds(50)) return;
  last_draw_ = now;
  const int filled = static_cast<int>(kBarWidth * done / total);
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(kBarWidth, '.');
  std::fprintf(stderr, "\r%-8s [%s] %3d%% (%lld/%lld)", stage.c_str(), bar.c_str(), static_cast<int>(100 * done / total),
               static_cast<long long>(done), static_cast<long long>(total));
  std::fflush(stderr);
  shown_ = true;
}

void ProgressBar::clear() {
  end_line();
  if (!shown_) return;
  std::fprintf(stderr, "\r\033[K");
  std::fflush(stderr);
  shown_ = false;
}

void ProgressBar::disable() {
  clear();
  enabled_ = false;
}

}  // namespace moat::cli
