// Result<T>: the one error-return type of clearcap (see DESIGN.md §3).
// Recoverable errors are returned, never thrown. An Error's message says what
// went wrong and what to do about it.
#pragma once

#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace clearcap {

struct Error {
  std::string message;  // complete sentence for the user, with the remedy
  int err = 0;          // errno-style code when one applies (positive), else 0
};

template <class T>
using Result = tl::expected<T, Error>;

inline tl::unexpected<Error> make_error(std::string message, int err = 0) {
  return tl::unexpected<Error>(Error{std::move(message), err});
}

}  // namespace clearcap
