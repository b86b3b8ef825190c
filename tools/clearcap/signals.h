// The stop and reopen signals of a capture run, taken by one waiting thread.
// Construct before any thread exists: the signals are blocked in every
// thread created afterwards, so only wait() receives them.
// Thread: the command's thread.
#pragma once

#include <signal.h>

namespace clearcap {

class RunSignals {
 public:
  enum class Got { kNone, kStop, kReopen };
  RunSignals();
  // Waits up to `ms` milliseconds for SIGINT/SIGTERM (kStop) or SIGHUP (kReopen).
  Got wait(int ms);

 private:
  sigset_t set_;
};

}  // namespace clearcap
