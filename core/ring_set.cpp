#include "core/ring_set.h"

#include <linux/perf_event.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

namespace clearcap {

namespace {

std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

// Sizes as common.bpf.h declares them (the kernel checks them at load).
constexpr uint32_t kPidFilterEntries = 4096;

Result<int> create_map(bpf_map_type type, const char* name, uint32_t key, uint32_t value, uint32_t entries,
                       const bpf_map_create_opts* opts = nullptr) {
  int fd = bpf_map_create(type, name, key, value, entries, opts);
  if (fd < 0) {
    int err = errno;
    return make_error(fmt::format("cannot create the BPF map {}: {}", name, errno_text(err)), err);
  }
  return fd;
}

}  // namespace

// 8 MiB on one CPU, 4 MiB from two on. Ring pages count twice in clearcap's
// RSS once written (the data area is mapped twice so records never wrap):
// under nginx on 2 CPUs the peak RSS was 99 MiB with 16 MiB rings and 67 MiB
// with 8 MiB rings, past the 64 MiB budget, while the full-speed loop is
// lossless with 4 MiB rings already (readers are kicked, not waited for).
uint32_t RingSet::default_ring_bytes() {
  const int ncpu = std::max(1, libbpf_num_possible_cpus());
  // The clamp leaves 8 MiB (one CPU) or 4 MiB: both powers of two, as are
  // page sizes.
  return static_cast<uint32_t>(
      std::clamp<uint64_t>((8ull << 20) / static_cast<uint64_t>(ncpu), 4ull << 20, 8ull << 20));
}

Result<std::unique_ptr<RingSet>> RingSet::create(const Options& opts) {
  std::unique_ptr<RingSet> self(new RingSet());
  self->opts_ = opts;
  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return make_error("cannot count the possible CPUs (/sys/devices/system/cpu/possible)", -ncpu);

  const uint32_t bpf_ring_bytes = opts.perf ? static_cast<uint32_t>(sysconf(_SC_PAGESIZE)) : opts.ring_bytes;
  for (int cpu = 0; cpu < ncpu; ++cpu) {
    int fd = bpf_map_create(BPF_MAP_TYPE_RINGBUF, nullptr, 0, 0, bpf_ring_bytes, nullptr);
    if (fd < 0) {
      int err = errno;
      return make_error(fmt::format("cannot create a {} KiB BPF ring buffer for CPU {}: {} (try a smaller --mapsize)",
                                    opts.ring_bytes / 1024, cpu, errno_text(err)),
                        err);
    }
    self->ring_fds_.push_back(fd);
  }
  LIBBPF_OPTS(bpf_map_create_opts, outer_opts, .inner_map_fd = static_cast<__u32>(self->ring_fds_[0]));
  auto ucpu = static_cast<uint32_t>(ncpu);
  struct {
    int* fd;
    bpf_map_type type;
    const char* name;
    uint32_t key, value, entries;
    const bpf_map_create_opts* opts;
  } maps[] = {
      {&self->outer_fd_, BPF_MAP_TYPE_ARRAY_OF_MAPS, "rings", 4, 4, ucpu, &outer_opts},
      {&self->stats_fd_, BPF_MAP_TYPE_PERCPU_ARRAY, "stats", 4, 8, CC_STAT__COUNT, nullptr},
      {&self->filter_fd_, BPF_MAP_TYPE_ARRAY, "filter_cfg", 4, sizeof(cc_filter_cfg), 1, nullptr},
      {&self->pid_filter_fd_, BPF_MAP_TYPE_HASH, "pid_filter", 4, 1, kPidFilterEntries, nullptr},
      {&self->perf_map_fd_, BPF_MAP_TYPE_PERF_EVENT_ARRAY, "perf_events", 4, 4, ucpu, nullptr},
      {&self->wake_fd_, BPF_MAP_TYPE_PERCPU_ARRAY, "wake_pending", 4, 8, 1, nullptr},
  };
  for (const auto& m : maps) {
    auto fd = create_map(m.type, m.name, m.key, m.value, m.entries, m.opts);
    if (!fd) return tl::unexpected(fd.error());
    *m.fd = *fd;
  }
  for (uint32_t cpu = 0; cpu < self->ring_fds_.size(); ++cpu) {
    int fd = self->ring_fds_[cpu];
    if (bpf_map_update_elem(self->outer_fd_, &cpu, &fd, BPF_ANY)) {
      int err = errno;
      return make_error(fmt::format("cannot install the ring of CPU {}: {}", cpu, errno_text(err)), err);
    }
  }
  if (opts.perf) {
    // One perf ring per CPU for bpf_perf_event_output(BPF_F_CURRENT_CPU),
    // waking the reader once wakeup_bytes wait (or on every record).
    for (uint32_t cpu = 0; cpu < ucpu; ++cpu) {
      perf_event_attr attr{};
      attr.size = sizeof(attr);
      attr.type = PERF_TYPE_SOFTWARE;
      attr.config = PERF_COUNT_SW_BPF_OUTPUT;
      attr.sample_type = PERF_SAMPLE_RAW;
      attr.sample_period = 1;
      if (opts.wakeup_bytes > 0) {
        attr.watermark = 1;
        attr.wakeup_watermark = static_cast<uint32_t>(std::min<uint64_t>(opts.wakeup_bytes, opts.ring_bytes / 2));
      } else {
        attr.wakeup_events = 1;
      }
      int fd = static_cast<int>(syscall(SYS_perf_event_open, &attr, -1, static_cast<int>(cpu), -1, PERF_FLAG_FD_CLOEXEC));
      if (fd < 0) {
        int err = errno;
        if (err == ENODEV || err == ENOENT) continue;  // a possible CPU that is not online: no ring for it
        return make_error(fmt::format("cannot open the perf event ring of CPU {}: {}", cpu, errno_text(err)), err);
      }
      self->perf_fds_.push_back(fd);
      if (ioctl(fd, PERF_EVENT_IOC_ENABLE, 0) || bpf_map_update_elem(self->perf_map_fd_, &cpu, &fd, BPF_ANY)) {
        int err = errno;
        return make_error(fmt::format("cannot install the perf event ring of CPU {}: {}", cpu, errno_text(err)), err);
      }
    }
  }
  return self;
}

RingSet::~RingSet() {
  for (int fd : {outer_fd_, stats_fd_, filter_fd_, pid_filter_fd_, perf_map_fd_, wake_fd_})
    if (fd >= 0) close(fd);
  for (int fd : ring_fds_) close(fd);
  for (int fd : perf_fds_) close(fd);
}

Result<void> RingSet::share_with(bpf_object* obj) const {
  const std::pair<const char*, int> shared[] = {{"rings", outer_fd_},           {"stats", stats_fd_},
                                                {"filter_cfg", filter_fd_},     {"pid_filter", pid_filter_fd_},
                                                {"perf_events", perf_map_fd_}, {"wake_pending", wake_fd_}};
  for (const auto& [name, fd] : shared) {
    bpf_map* m = bpf_object__find_map_by_name(obj, name);
    if (!m) continue;  // a family that does not use it
    if (int err = bpf_map__reuse_fd(m, fd))
      return make_error(fmt::format("cannot share the BPF map {} with {}: {}", name, bpf_object__name(obj),
                                    errno_text(err)),
                        -err);
  }
  return {};
}

Result<uint64_t> RingSet::read_stat(uint32_t idx) const {
  std::vector<uint64_t> per_cpu(static_cast<size_t>(std::max(libbpf_num_possible_cpus(), 1)));
  if (idx >= CC_STAT__COUNT || bpf_map_lookup_elem(stats_fd_, &idx, per_cpu.data())) {
    int err = idx >= CC_STAT__COUNT ? EINVAL : errno;
    return make_error(fmt::format("cannot read BPF counter {}: {}", idx, errno_text(err)), err);
  }
  uint64_t total = 0;
  for (uint64_t v : per_cpu) total += v;
  return total;
}

Result<std::array<uint64_t, CC_STAT__COUNT>> RingSet::read_stats() const {
  std::array<uint64_t, CC_STAT__COUNT> total{};
  for (uint32_t i = 0; i < CC_STAT__COUNT; ++i) {
    auto v = read_stat(i);
    if (!v) return tl::unexpected(v.error());
    total[i] = *v;
  }
  return total;
}

Result<void> RingSet::set_filter(const std::vector<int>& pids, uint32_t uid, const Cgroup& cgroup) {
  cc_filter_cfg cfg{};
  cfg.generation = ++generation_;  // never 0: cached verdicts of the old filter expire
  if (generation_ == 0) cfg.generation = ++generation_;
  if (!pids.empty()) cfg.flags |= CC_FILTER_PID;
  if (uid != 0) {
    cfg.flags |= CC_FILTER_UID;
    cfg.uid = uid;
  }
  if (cgroup.id != 0) {
    cfg.flags |= CC_FILTER_CGROUP;
    cfg.cgroup_id = cgroup.id;
    cfg.cgroup_level = cgroup.level;
  }
  // Add the new pids before switching the filter on, so no wanted event is
  // dropped in between; stale pids are removed afterwards.
  uint8_t one = 1;
  for (int p : pids) {
    auto pid = static_cast<uint32_t>(p);
    if (bpf_map_update_elem(pid_filter_fd_, &pid, &one, BPF_ANY)) {
      int err = errno;
      return make_error(fmt::format("cannot add pid {} to the BPF pid filter: {}", pid, errno_text(err)), err);
    }
  }
  uint32_t zero = 0;
  if (bpf_map_update_elem(filter_fd_, &zero, &cfg, BPF_ANY)) {
    int err = errno;
    return make_error(fmt::format("cannot update the BPF filter: {}", errno_text(err)), err);
  }
  std::vector<uint32_t> stale;
  uint32_t key = 0, next = 0;
  uint32_t* prev = nullptr;
  while (bpf_map_get_next_key(pid_filter_fd_, prev, &next) == 0) {
    bool wanted = false;
    for (int p : pids) wanted |= (static_cast<uint32_t>(p) == next);
    if (!wanted) stale.push_back(next);
    key = next;
    prev = &key;
  }
  for (uint32_t pid : stale) bpf_map_delete_elem(pid_filter_fd_, &pid);
  return {};
}

}  // namespace clearcap
