#include "core/boot_clock.h"

#include <time.h>

namespace clearcap {

namespace {
uint64_t read_clock(clockid_t id) {
  timespec ts;
  clock_gettime(id, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}
}  // namespace

uint64_t BootClock::now_boot_ns() { return read_clock(CLOCK_BOOTTIME); }
uint64_t BootClock::now_wall_ns() { return read_clock(CLOCK_REALTIME); }

void BootClock::refresh() {
  // Bracket the realtime read with two boottime reads and keep the tightest
  // of a few tries, so a preemption between the reads does not skew it.
  uint64_t best_gap = ~0ull;
  for (int i = 0; i < 3; ++i) {
    uint64_t b0 = now_boot_ns();
    uint64_t w = now_wall_ns();
    uint64_t b1 = now_boot_ns();
    if (b1 - b0 < best_gap) {
      best_gap = b1 - b0;
      offset_ns_ = w - (b0 + (b1 - b0) / 2);
    }
  }
}

}  // namespace clearcap
