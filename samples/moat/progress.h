// Progress of the slow phases (upload, compile) on stderr. On a terminal: a one-line
// bar, redrawn at most every 1/20 s and erased when done. Otherwise (pipes, logs): one
// line per phase, "moat: compile 37 kernels ... done in 3.6 s", begun when the phase
// begins and ended when it ends.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace moat::cli {

class ProgressBar {
 public:
  ProgressBar();
  ~ProgressBar();  // erases a bar still shown

  // `stage` ("upload", "compile"): `done` of `total` units.
  void update(const std::string& stage, int64_t done, int64_t total);
  // Erases the bar; later updates draw it again.
  void clear();
  // Stops drawing for good (e.g. once text streams to the terminal).
  void disable();

 private:
  void draw_bar(const std::string& stage, int64_t done, int64_t total);
  void log_line(const std::string& stage, int64_t done, int64_t total);
  void end_line();

  bool enabled_ = true, terminal_ = false, shown_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
  // Not a terminal: the phase under way (a new one starts when the stage changes or its
  // count goes back), when it began, and whether its line is open.
  std::string phase_;
  int64_t phase_done_ = 0;
  std::chrono::steady_clock::time_point phase_start_{};
  bool line_open_ = false;
};

}  // namespace moat::cli
