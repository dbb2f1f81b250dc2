#include "samples/moat/progress.h"

#include <unistd.h>

#include <cstdio>

namespace moat::cli {

namespace {

constexpr int kBarWidth = 30;  // characters between the brackets

}  // namespace

ProgressBar::ProgressBar() : enabled_(isatty(STDERR_FILENO) == 1) {}

ProgressBar::~ProgressBar() { clear(); }

void ProgressBar::update(const std::string& stage, int64_t done, int64_t total) {
  if (!enabled_ || total <= 0) return;
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
