// The textual form of a Tensor IR graph (`.mir` files): bugs are reported and
// reproduced as text, and print(parse(print(g))) == print(g).
//
//   graph main(T, S) {
//     %0 = input() {name = "x"} : f32[T, 64]
//     %1 = param() {name = "w"} : q8_0[32, 64]
//     %2 = matmul(%0, %1) {b_transposed = true} : f32[T, 32]
//     return %2
//   }
//
// Values are numbered in order from %0. Attributes are printed sorted by name; floats
// always carry a '.', an exponent, or are inf/nan, so 2.0 and 2 stay distinct kinds.
// `//` starts a comment that runs to the end of the line.
#pragma once

#include <string>
#include <string_view>

#include "ir/graph.h"

namespace moat::ir {

std::string print(const Graph& graph);

// Parses and verifies a graph. Errors are UserErrors "SOURCE:LINE:COL: what is wrong".
Graph parse(std::string_view text, const std::string& source_name);

// Reads a .mir file (UserError naming the file when it cannot be read).
Graph parse_file(const std::string& path);

}  // namespace moat::ir
