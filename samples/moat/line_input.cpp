#include "samples/moat/line_input.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <iostream>

#ifdef MOAT_HAVE_LIBEDIT
#include <editline/readline.h>
#endif

namespace moat::cli {

LineInput::LineInput() : terminal_(isatty(STDIN_FILENO) == 1 && isatty(STDOUT_FILENO) == 1) {}

bool LineInput::line_editing() {
#ifdef MOAT_HAVE_LIBEDIT
  return true;
#else
  return false;
#endif
}

bool LineInput::read(const char* prompt, std::string& line) {
#ifdef MOAT_HAVE_LIBEDIT
  if (terminal_) {
    std::fflush(stdout);
    char* text = readline(prompt);
    if (!text) return false;
    line = text;
    std::free(text);
    if (!line.empty()) add_history(line.c_str());
    return true;
  }
#endif
  if (terminal_) {
    std::fputs(prompt, stdout);
    std::fflush(stdout);
  }
  return static_cast<bool>(std::getline(std::cin, line));
}

}  // namespace moat::cli
