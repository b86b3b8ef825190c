// --syscall-fd auto: the system-wide syscall tracepoints only while they are
// needed. They find the socket of a connection whose library object has
// none (curl 7.88+ runs TLS over a BIO of its own; asyncio and proxies use
// memory BIOs), and they run for every read/write syscall on the machine,
// so a load balancer whose TLS runs over socket BIOs should never pay for
// them. The programs count every record sent without a socket
// (CC_STAT_NO_FD); this watch polls that count and, when it grows, asks
// the modules to attach their tracepoints (CaptureSession::want_syscall_fd);
// when it has not grown for `linger`, to detach them. The records of such a
// connection before the attach carry fd -1 and no addresses (never wrong
// ones); its later calls, and later connections, get their socket.
//
// Thread: construct and destroy on one thread (the destructor joins the
// poll thread, which makes every call of `count` and `want`); attaches()
// from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

#include "core/result.h"

namespace clearcap {

class SyscallFdDemand {
 public:
  using Count = std::function<Result<uint64_t>()>;    // records sent without a socket so far
  using Want = std::function<Result<void>(bool)>;     // attach (true) or detach the tracepoints
  using Log = std::function<void(const std::string&)>;
  using Clock = std::chrono::steady_clock;
  static constexpr std::chrono::milliseconds kPoll{100};
  static constexpr std::chrono::seconds kLinger{60};

  // Starts polling (a thread) unless `start` is false (tests call tick()).
  SyscallFdDemand(Count count, Want want, Log log, std::chrono::milliseconds linger = kLinger, bool start = true);
  ~SyscallFdDemand();
  SyscallFdDemand(const SyscallFdDemand&) = delete;
  SyscallFdDemand& operator=(const SyscallFdDemand&) = delete;

  // One poll at `now`.
  void tick(Clock::time_point now);
  // Times the tracepoints were attached on demand.
  uint64_t attaches() const { return attaches_.load(std::memory_order_relaxed); }
  bool wanted() const { return wanted_; }

 private:
  void set(bool wanted, const char* why);
  Count count_;
  Want want_;
  Log log_;
  std::chrono::milliseconds linger_;
  uint64_t seen_ = 0;  // the count at the last poll
  bool wanted_ = false;
  Clock::time_point last_growth_{};
  std::atomic<uint64_t> attaches_{0};
  std::jthread thread_;
};

}  // namespace clearcap
