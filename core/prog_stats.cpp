#include "core/prog_stats.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <bpf/bpf.h>
#include <fmt/format.h>

namespace clearcap {

Result<BpfStatsOn> BpfStatsOn::enable() {
  int fd = bpf_enable_stats(BPF_STATS_RUN_TIME);
  if (fd < 0) {
    int err = errno;
    return make_error(fmt::format("cannot switch on BPF run-time statistics (BPF_ENABLE_STATS): {}; "
                                  "run as root on Linux 5.8 or later",
                                  std::strerror(err)),
                      err);
  }
  return BpfStatsOn(fd);
}

BpfStatsOn::~BpfStatsOn() {
  if (fd_ >= 0) close(fd_);
}

Result<std::vector<ProgTime>> read_prog_times(const std::vector<std::pair<std::string, int>>& progs) {
  std::vector<ProgTime> out;
  out.reserve(progs.size());
  for (const auto& [name, fd] : progs) {
    bpf_prog_info info{};
    uint32_t len = sizeof(info);
    if (bpf_obj_get_info_by_fd(fd, &info, &len)) {
      int err = errno;
      return make_error(fmt::format("cannot read the statistics of BPF program {}: {}", name, std::strerror(err)),
                        err);
    }
    out.push_back(ProgTime{name, info.id, info.run_time_ns, info.run_cnt});
  }
  return out;
}

std::vector<ProgTime> prog_time_delta(const std::vector<ProgTime>& before, const std::vector<ProgTime>& after) {
  std::vector<ProgTime> d = after;
  for (size_t i = 0; i < d.size() && i < before.size(); ++i) {
    d[i].run_time_ns -= before[i].run_time_ns;
    d[i].run_cnt -= before[i].run_cnt;
  }
  return d;
}

}  // namespace clearcap
