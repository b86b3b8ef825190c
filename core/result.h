// Result<T>: the one error-return type of clearcap (see DESIGN.md §3).
// Recoverable errors are returned, never thrown. An Error's message says what
// went wrong and what to do about it; its kind is what code branches on
// (never the message text).
#pragma once

#include <cerrno>
#include <string>
#include <utility>

#include <tl/expected.hpp>

namespace clearcap {

enum class ErrorKind {
  kOther,
  kNotFound,     // a file, symbol, process or interface that does not exist
  kPermission,   // not allowed (privileges, file modes, lockdown)
  kUnsupported,  // the kernel or library cannot do it
  kBusy,         // in use by someone else, try again later
  kExited,       // the process went away meanwhile
  kInvalid,      // bad input from the user or a caller
};

// The kind an errno value means; kOther when it says nothing more.
constexpr ErrorKind error_kind_of(int err) {
  switch (err < 0 ? -err : err) {
    case ENOENT: case ENODEV: case ENXIO: return ErrorKind::kNotFound;
    case EPERM: case EACCES: return ErrorKind::kPermission;
    case EOPNOTSUPP: case ENOSYS: case EPROTONOSUPPORT: return ErrorKind::kUnsupported;
    case EBUSY: case EAGAIN: case EADDRINUSE: return ErrorKind::kBusy;
    case ESRCH: return ErrorKind::kExited;
    case EINVAL: case E2BIG: case ERANGE: return ErrorKind::kInvalid;
    default: return ErrorKind::kOther;
  }
}

struct Error {
  std::string message;  // complete sentence for the user, with the remedy
  int err = 0;          // errno-style code when one applies (positive), else 0
  ErrorKind kind = ErrorKind::kOther;
};

template <class T>
using Result = tl::expected<T, Error>;

// The kind follows from `err` (see error_kind_of).
inline tl::unexpected<Error> make_error(std::string message, int err = 0) {
  return tl::unexpected<Error>(Error{std::move(message), err, error_kind_of(err)});
}

inline tl::unexpected<Error> make_error(ErrorKind kind, std::string message, int err = 0) {
  return tl::unexpected<Error>(Error{std::move(message), err, kind});
}

// A "skipped X because Y" line for the user, with how loudly to say it.
struct Note {
  enum class Severity { kDebug, kInfo, kWarning };
  Severity severity = Severity::kDebug;
  std::string text;
};

}  // namespace clearcap
