#include "core/syscall_fd_demand.h"

#include <condition_variable>
#include <mutex>

#include <fmt/format.h>

#include "core/thread_setup.h"

namespace clearcap {

SyscallFdDemand::SyscallFdDemand(Count count, Want want, Log log, std::chrono::milliseconds linger, bool start)
    : count_(std::move(count)), want_(std::move(want)), log_(std::move(log)), linger_(linger) {
  if (!start) return;
  thread_ = std::jthread([this](std::stop_token st) {
    name_this_thread("cc-syscall-fd");
    std::mutex mu;
    std::condition_variable_any cv;
    std::unique_lock lk(mu);
    while (!cv.wait_for(lk, st, kPoll, [] { return false; })) {
      if (st.stop_requested()) return;
      tick(Clock::now());
    }
  });
}

SyscallFdDemand::~SyscallFdDemand() {
  thread_.request_stop();
  if (thread_.joinable()) thread_.join();
}

void SyscallFdDemand::tick(Clock::time_point now) {
  auto n = count_();
  if (!n) return;
  // seen_ starts at 0: records counted during the start-up count too.
  const bool grew = *n > seen_;
  seen_ = *n;
  if (grew) {
    last_growth_ = now;
    if (!wanted_)
      set(true, "a connection without a socket in its library object appeared (a BIO of the program's own, "
                "a memory BIO)");
  } else if (wanted_ && now - last_growth_ >= linger_) {
    set(false, "no connection without a socket for a while");
  }
}

void SyscallFdDemand::set(bool wanted, const char* why) {
  if (auto r = want_(wanted); !r) {
    log_(fmt::format("cannot {} the syscall tracepoints: {}", wanted ? "attach" : "detach", r.error().message));
    if (wanted) return;  // tried again at the next growth
  }
  wanted_ = wanted;
  if (wanted) {
    attaches_.fetch_add(1, std::memory_order_relaxed);
    log_(fmt::format("syscall tracepoints attached: {}; they run for every read/write syscall on the machine "
                     "until none has been seen for {} s",
                     why, std::chrono::duration_cast<std::chrono::seconds>(linger_).count()));
  } else {
    log_(fmt::format("syscall tracepoints detached: {}", why));
  }
}

}  // namespace clearcap
