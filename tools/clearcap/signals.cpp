#include "tools/clearcap/signals.h"

#include <pthread.h>

#include <atomic>
#include <ctime>
#include <memory>
#include <thread>
#include <initializer_list>

namespace clearcap {

RunSignals::RunSignals() {
  sigemptyset(&set_);
  sigaddset(&set_, SIGINT);
  sigaddset(&set_, SIGTERM);
  sigaddset(&set_, SIGHUP);
  // A shell starts background jobs with SIGINT ignored, and an ignored
  // signal is discarded even while blocked: sigtimedwait() would never see
  // it. Restore the default disposition first (it never runs: blocked).
  for (int sig : {SIGINT, SIGTERM, SIGHUP}) signal(sig, SIG_DFL);
  pthread_sigmask(SIG_BLOCK, &set_, nullptr);
  signal(SIGPIPE, SIG_IGN);  // a closed stdout ends the run (EPIPE), with the summary
}

std::string RunSignals::run_bounded(std::function<void()> step, std::chrono::steady_clock::time_point deadline,
                                    const std::string& deadline_why) {
  // Shared: a thread left behind may still set it after this returns.
  auto done = std::make_shared<std::atomic<bool>>(false);
  std::thread t([step = std::move(step), done] {
    step();
    done->store(true);
  });
  while (!done->load()) {
    std::string why;
    if (wait(20) == Got::kStop) why = "a second stop signal";
    else if (std::chrono::steady_clock::now() >= deadline) why = deadline_why;
    if (!why.empty()) {
      t.detach();  // blocked in an output; the process exits next
      return why;
    }
  }
  t.join();
  return {};
}

RunSignals::Got RunSignals::wait(int ms) {
  timespec tick{ms / 1000, static_cast<long>(ms % 1000) * 1'000'000};
  int sig = sigtimedwait(&set_, nullptr, &tick);
  if (sig == SIGINT || sig == SIGTERM) return Got::kStop;
  if (sig == SIGHUP) return Got::kReopen;
  return Got::kNone;
}

}  // namespace clearcap
