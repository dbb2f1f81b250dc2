// The edge between the C API and the C++ runtime: every moat_* function runs its body
// through `guarded`, which turns each C++ exception into a moat_status and this
// thread's last-error message, so that nothing is thrown across the C interface.
#pragma once

#include <string>

#include "include/moat.h"
#include "support/strings.h"

namespace moat::capi {

// Sets this thread's last error and returns `status` (for `return fail(...)`).
moat_status fail(moat_status status, const std::string& message);

// MOAT_ERROR_INVALID_ARGUMENT with a message naming `function` and what is wrong.
template <class... Parts>
moat_status invalid(const char* function, const Parts&... parts) {
  return fail(MOAT_ERROR_INVALID_ARGUMENT, cat(function, ": ", parts...));
}

// Maps the exception being handled (call only inside a catch block) to a status:
// UserError → MOAT_ERROR_USER, std::bad_alloc → MOAT_ERROR_OUT_OF_MEMORY, anything
// else (InternalError, other std::exception, non-standard throws) → MOAT_ERROR_INTERNAL.
moat_status fail_with_current_exception(const char* function);

// `body(function)` (returning moat_status), with every exception mapped at the
// boundary. `function` is the C function's name, for messages (MOAT_CAPI_REQUIRE).
template <class Body>
moat_status guarded(const char* function, Body&& body) noexcept {
  try {
    return body(function);
  } catch (...) {
    return fail_with_current_exception(function);
  }
}

}  // namespace moat::capi

// The argument checks inside a `guarded` body (whose parameter is `fn`): return
// MOAT_ERROR_INVALID_ARGUMENT with the function's name and what is wrong.
#define MOAT_CAPI_REQUIRE(cond, ...)                                \
  do {                                                              \
    if (!(cond)) return ::moat::capi::invalid(fn, __VA_ARGS__);     \
  } while (0)
#define MOAT_CAPI_NOT_NULL(arg) MOAT_CAPI_REQUIRE((arg) != nullptr, #arg " is NULL")

// The lambda head of a `guarded` body: `return guarded(__func__, MOAT_CAPI_BODY { ... });`
#define MOAT_CAPI_BODY [&]([[maybe_unused]] const char* fn) -> moat_status
