// The user's lines for `moat run --chat`. On a terminal (standard input and output both
// terminals) with libedit, lines are edited in place (arrow keys, Ctrl-A / Ctrl-E, ...)
// and earlier lines come back with Up / Down (history of this session only, not saved);
// without libedit (see the CMake status line) or when input is not a terminal, a line is
// read as it comes from standard input.
#pragma once

#include <string>

namespace moat::cli {

class LineInput {
 public:
  LineInput();
  bool terminal() const { return terminal_; }
  // The next line without its newline, after showing `prompt` on a terminal (nothing
  // is shown otherwise). False at the end of input (Ctrl-D on a terminal).
  bool read(const char* prompt, std::string& line);
  // Whether lines are edited with libedit (false: plain reads).
  static bool line_editing();

 private:
  bool terminal_ = false;
};

}  // namespace moat::cli
