#include "capi/boundary.h"

#include <exception>
#include <new>

#include "support/error.h"

namespace moat::capi {

namespace {

thread_local std::string last_error;

}  // namespace

moat_status fail(moat_status status, const std::string& message) {
  try {
    last_error = message;
  } catch (...) {  // no memory for the message: the status still says what happened
    last_error.clear();
  }
  return status;
}

moat_status fail_with_current_exception(const char* function) {
  try {
    throw;
  } catch (const UserError& e) {
    return fail(MOAT_ERROR_USER, e.what());
  } catch (const std::bad_alloc&) {
    return fail(MOAT_ERROR_OUT_OF_MEMORY, cat(function, ": out of host memory"));
  } catch (const InternalError& e) {
    return fail(MOAT_ERROR_INTERNAL, cat("internal error (a bug of moatless; please report it): ", e.what()));
  } catch (const std::exception& e) {
    return fail(MOAT_ERROR_INTERNAL, cat(function, ": unexpected error: ", e.what()));
  } catch (...) {
    return fail(MOAT_ERROR_INTERNAL, cat(function, ": unexpected error of an unknown type"));
  }
}

}  // namespace moat::capi

extern "C" {

const char* moat_last_error(void) { return moat::capi::last_error.c_str(); }

const char* moat_status_name(moat_status status) {
  switch (status) {
    case MOAT_OK: return "MOAT_OK";
    case MOAT_ERROR_INVALID_ARGUMENT: return "MOAT_ERROR_INVALID_ARGUMENT";
    case MOAT_ERROR_USER: return "MOAT_ERROR_USER";
    case MOAT_ERROR_INTERNAL: return "MOAT_ERROR_INTERNAL";
    case MOAT_ERROR_OUT_OF_MEMORY: return "MOAT_ERROR_OUT_OF_MEMORY";
    case MOAT_ERROR_BUFFER_TOO_SMALL: return "MOAT_ERROR_BUFFER_TOO_SMALL";
  }
  return "unknown status";
}

const char* moat_version(void) { return MOAT_VERSION; }

}  // extern "C"
