// A one-line progress bar on stderr, drawn only when stderr is a terminal (never in
// pipes or logs). Redrawn at most every 1/20 s; erased when done.
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
  bool enabled_ = false, shown_ = false;
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace moat::cli
