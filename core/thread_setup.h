// What a thread sets up about itself: its name, as top -H, perf and
// /proc/PID/task/TID/comm show it (which of clearcap's threads takes the
// CPU, or is late), and real-time scheduling for the ring readers.
// Thread: name_this_thread from the thread itself; use_realtime from any.
#pragma once

#include <pthread.h>
#include <sched.h>

#include <cerrno>
#include <cstring>
#include <string>

#include <fmt/format.h>

namespace clearcap {

inline void name_this_thread(const std::string& name) {
  // The kernel keeps 15 bytes; a longer name would be refused whole.
  pthread_setname_np(pthread_self(), name.substr(0, 15).c_str());
}

// SCHED_FIFO at `priority` (1-99) for thread `t`; 0 leaves it alone.
// Returns how the thread is scheduled, in words, for --debug: a refusal
// (no CAP_SYS_NICE, a cgroup without real-time budget) leaves the thread on
// normal scheduling and says why.
inline std::string use_realtime(pthread_t t, int priority) {
  if (priority <= 0) return "normal scheduling";
  sched_param sp{};
  sp.sched_priority = priority;
  if (int err = pthread_setschedparam(t, SCHED_FIFO, &sp); err != 0)
    return fmt::format("normal scheduling (SCHED_FIFO {} refused: {})", priority, std::strerror(err));
  return fmt::format("SCHED_FIFO {}", priority);
}

}  // namespace clearcap
