#include "samples/moat/chat_interrupt.h"

#include <signal.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

namespace moat::cli {

namespace {

// Shared with the signal handler: lock-free atomics and plain data written before the
// handler is installed.
std::atomic<bool> g_cancel{false};
std::atomic<bool> g_in_reply{false};
std::atomic<long> g_last_interrupt_ms{-1};  // CLOCK_MONOTONIC, -1: none yet
bool g_have_termios = false;
termios g_termios{};

long now_ms() {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);  // async-signal-safe
  return static_cast<long>(t.tv_sec) * 1000 + t.tv_nsec / 1000000;
}

void on_interrupt(int) {
  const long now = now_ms(), last = g_last_interrupt_ms.exchange(now);
  const bool soon = last >= 0 && now - last < kSecondInterruptMs;
  if (g_in_reply.load() && !g_cancel.load() && !soon) {
    g_cancel.store(true);
    return;
  }
  // Only async-signal-safe calls from here: restore the terminal, end the line, exit.
  if (g_have_termios) tcsetattr(STDIN_FILENO, TCSANOW, &g_termios);
  (void)!write(STDOUT_FILENO, "\n", 1);
  _exit(130);
}

}  // namespace

void install_chat_interrupt() {
  static_assert(std::atomic<bool>::is_always_lock_free && std::atomic<long>::is_always_lock_free);
  g_have_termios = isatty(STDIN_FILENO) == 1 && tcgetattr(STDIN_FILENO, &g_termios) == 0;
  struct sigaction action {};
  action.sa_handler = on_interrupt;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // output written while a reply is stopped resumes instead of failing (EINTR)
  sigaction(SIGINT, &action, nullptr);
}

const std::atomic<bool>* reply_cancel() { return &g_cancel; }

void begin_reply() {
  g_cancel.store(false);
  g_in_reply.store(true);
}

bool end_reply() {
  g_in_reply.store(false);
  return g_cancel.exchange(false);
}

}  // namespace moat::cli
