// The message of the UserError `fn()` throws; a test failure when it throws none.
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "support/error.h"

namespace moat::testing {

template <class Fn>
std::string user_error_of(Fn&& fn) {
  try {
    fn();
  } catch (const UserError& e) {
    return e.what();
  }
  FAIL("expected a UserError");
  return {};
}

}  // namespace moat::testing
