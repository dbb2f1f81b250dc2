// Ctrl-C in `moat run --chat`, as llama.cpp's interactive mode treats it: during a reply
// SIGINT stops the reply (generation sees `reply_cancel()` and returns) and the chat goes
// on; at the prompt, or within kSecondInterrupt of the previous one, it ends the process
// with status 130 (128 + SIGINT) after putting the terminal back as it was.
#pragma once

#include <atomic>

namespace moat::cli {

inline constexpr long kSecondInterruptMs = 1000;  // a second Ctrl-C within this exits

// Installs the SIGINT handler (and remembers the terminal settings of standard input,
// when it is one). Call once, before the first prompt.
void install_chat_interrupt();
// The flag a reply's generation polls (runtime::GenerationOptions::cancel).
const std::atomic<bool>* reply_cancel();
// Brackets a reply: begin clears the flag and makes Ctrl-C stop the reply; end makes
// the next Ctrl-C exit. Returns whether this reply was stopped by Ctrl-C.
void begin_reply();
bool end_reply();

}  // namespace moat::cli
