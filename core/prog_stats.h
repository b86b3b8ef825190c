// Program time of BPF programs (the kernel's run_time_ns / run_cnt): what
// clearcap's own BPF code costs per event. A uprobe trap costs ~18 us on the
// project's VMs and 0.3-0.7 us on bare metal; it hides the program's cost in
// wall-clock figures, so the program time is measured directly.
// Thread: any; no shared state.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"

namespace clearcap {

// Keeps the kernel's BPF run-time statistics on while it lives (the
// BPF_ENABLE_STATS syscall: reference counted by the kernel, so nothing is
// left switched on when the process exits and kernel.bpf_stats_enabled set
// by someone else is not switched off).
class BpfStatsOn {
 public:
  static Result<BpfStatsOn> enable();
  BpfStatsOn(BpfStatsOn&& o) noexcept : fd_(std::exchange(o.fd_, -1)) {}
  BpfStatsOn& operator=(BpfStatsOn&&) = delete;
  ~BpfStatsOn();

 private:
  explicit BpfStatsOn(int fd) : fd_(fd) {}
  int fd_ = -1;
};

struct ProgTime {
  std::string name;
  uint32_t id = 0;
  uint64_t run_time_ns = 0;
  uint64_t run_cnt = 0;
};

// Current counters of the programs behind these fds ({name, prog fd}).
Result<std::vector<ProgTime>> read_prog_times(const std::vector<std::pair<std::string, int>>& progs);

// after - before, program by program (same order, as read_prog_times gives).
std::vector<ProgTime> prog_time_delta(const std::vector<ProgTime>& before, const std::vector<ProgTime>& after);

}  // namespace clearcap
