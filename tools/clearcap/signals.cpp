#include "tools/clearcap/signals.h"

#include <pthread.h>

#include <ctime>
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

RunSignals::Got RunSignals::wait(int ms) {
  timespec tick{ms / 1000, static_cast<long>(ms % 1000) * 1'000'000};
  int sig = sigtimedwait(&set_, nullptr, &tick);
  if (sig == SIGINT || sig == SIGTERM) return Got::kStop;
  if (sig == SIGHUP) return Got::kReopen;
  return Got::kNone;
}

}  // namespace clearcap
