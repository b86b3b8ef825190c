// The stop and reopen signals of a capture run, taken by one waiting thread.
// Construct before any thread exists: the signals are blocked in every
// thread created afterwards, so only wait() receives them.
// Thread: the command's thread.
#pragma once

#include <signal.h>

#include <chrono>
#include <functional>
#include <string>

namespace clearcap {

class RunSignals {
 public:
  enum class Got { kNone, kStop, kReopen };
  RunSignals();
  // Waits up to `ms` milliseconds for SIGINT/SIGTERM (kStop) or SIGHUP (kReopen).
  Got wait(int ms);
  // Runs `step` on a thread of its own while waiting for it; returns why
  // it was cut short ("a second stop signal", or `deadline_why` once
  // `deadline` has passed; the thread is then left behind: the caller
  // exits next), or empty once `step` finished.
  std::string run_bounded(std::function<void()> step, std::chrono::steady_clock::time_point deadline,
                          const std::string& deadline_why);

 private:
  sigset_t set_;
};

}  // namespace clearcap
