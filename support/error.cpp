#include "support/error.h"

namespace moat {

void internal_error_at(const char* file, int line, const std::string& message) {
  throw InternalError(cat("internal error at ", file, ":", line, ": ", message,
                          " (this is a bug in moatless; please report it)"));
}

}  // namespace moat
