// Error types of moatless. Two kinds, never mixed (STYLE.md rule 5):
//  - UserError: the input is wrong (a file, an option, a model the runtime does not
//    support). The message names the file / field / option and says what to do.
//    The CLI prints it on one line and exits 2.
//  - InternalError: moatless itself is wrong (a broken invariant). Exits 1.
#pragma once

#include <stdexcept>
#include <string>

#include "support/strings.h"

namespace moat {

class UserError : public std::runtime_error {
 public:
  explicit UserError(const std::string& message) : std::runtime_error(message) {}
};

class InternalError : public std::logic_error {
 public:
  explicit InternalError(const std::string& message) : std::logic_error(message) {}
};

// Throws UserError with the pieces concatenated.
template <class... Parts>
[[noreturn]] void user_error(const Parts&... parts) {
  throw UserError(cat(parts...));
}

// Throws InternalError with the pieces concatenated, prefixed with the source location.
[[noreturn]] void internal_error_at(const char* file, int line, const std::string& message);

}  // namespace moat

// Checks an invariant of moatless itself (not of its input).
#define MOAT_INTERNAL_CHECK(cond, ...)                                          \
  do {                                                                          \
    if (!(cond))                                                                \
      ::moat::internal_error_at(__FILE__, __LINE__,                             \
                                ::moat::cat("check failed: " #cond ": ", __VA_ARGS__)); \
  } while (0)

// Fails unconditionally: an unhandled case that is a bug of moatless (e.g. a node kind
// an emitter does not know).
#define MOAT_INTERNAL_ERROR(...) ::moat::internal_error_at(__FILE__, __LINE__, ::moat::cat(__VA_ARGS__))
