// The check every golden-logits test makes: rows of logits against a reference .npy
// (max|d| / max|ref| within a tolerance, and each row's argmax the reference's).
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "support/npy.h"

namespace moat::testing {

// Compares logits rows with the reference: the tolerance and every row's argmax.
inline void expect_matches(const std::vector<float>& got, const NpyF32& want, double tolerance, const std::string& what,
                           int argmax_flips = 0) {
  REQUIRE(want.shape.size() == 2);
  REQUIRE(got.size() == want.values.size());
  const size_t vocab = static_cast<size_t>(want.shape[1]);
  double diff = 0, scale = 0;
  int argmax_mismatches = 0;
  for (size_t r = 0; r * vocab < got.size(); ++r) {
    size_t g = 0, w = 0;
    for (size_t c = 0; c < vocab; ++c) {
      const size_t i = r * vocab + c;
      diff = std::max(diff, std::fabs(static_cast<double>(got[i]) - want.values[i]));
      scale = std::max(scale, std::fabs(static_cast<double>(want.values[i])));
      if (got[i] > got[r * vocab + g]) g = c;
      if (want.values[i] > want.values[r * vocab + w]) w = c;
    }
    argmax_mismatches += g != w;
  }
  CHECK_MESSAGE(diff / scale <= tolerance, what, ": max|d|/max|ref| = ", diff / scale);
  CHECK_MESSAGE(argmax_mismatches <= argmax_flips, what, ": ", argmax_mismatches, " positions with another argmax");
  MESSAGE(what << ": max|d|/max|ref| = " << diff / scale);
}

}  // namespace moat::testing
