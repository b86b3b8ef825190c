// Converts BPF timestamps (bpf_ktime_get_boot_ns, CLOCK_BOOTTIME) to Unix
// wall-clock nanoseconds. The offset is re-sampled by refresh() so that wall
// clock steps (NTP) are followed.
// Thread: one owner (the processor thread).
#pragma once

#include <cstdint>

namespace clearcap {

class BootClock {
 public:
  BootClock() { refresh(); }
  void refresh();
  uint64_t to_wall(uint64_t boot_ns) const { return boot_ns + offset_ns_; }
  static uint64_t now_boot_ns();
  static uint64_t now_wall_ns();

 private:
  uint64_t offset_ns_ = 0;
};

}  // namespace clearcap
