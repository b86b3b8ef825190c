#include "skel/tls_skeleton.h"

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

#include "tls.skel.h"

namespace clearcap {

namespace {

std::string errno_text(int err) { return std::strerror(err < 0 ? -err : err); }

}  // namespace

Result<std::unique_ptr<TlsSkeleton>> TlsSkeleton::open_and_load(const Options& opts) {
  std::unique_ptr<TlsSkeleton> self(new TlsSkeleton());
  self->skel_ = tls_bpf__open();
  if (!self->skel_)
    return make_error(fmt::format("cannot open the tls BPF object: {}", errno_text(errno)), errno);

  int ncpu = libbpf_num_possible_cpus();
  if (ncpu <= 0) return make_error("cannot count the possible CPUs (/sys/devices/system/cpu/possible)", -ncpu);

  self->ring_bytes_ = opts.ring_bytes;
  self->perf_ = opts.perf;
  self->skel_->rodata->wakeup_bytes = opts.wakeup_bytes;
  self->skel_->rodata->use_perf = opts.perf ? 1 : 0;
  bpf_map__set_max_entries(self->skel_->maps.perf_events, static_cast<uint32_t>(ncpu));
  self->skel_->rodata->syscall_fd = opts.syscall_fd ? 1 : 0;
  bpf_map__set_max_entries(self->skel_->maps.rings, static_cast<uint32_t>(ncpu));
  // One 64 KiB packet scratch per CPU (too big for a per-CPU map value).
  bpf_map__set_max_entries(self->skel_->maps.pkt_scratch_map, static_cast<uint32_t>(ncpu));
  if (opts.snap_len == 0 || opts.snap_len > CC_PACKET_MAX)
    return make_error(fmt::format("snap length {} is out of range 1..{}", opts.snap_len, CC_PACKET_MAX), EINVAL);
  self->skel_->rodata->snap_len = opts.snap_len;

  // Every inner ring must match the template's size; create the rings first
  // and use one of them as the template.
  // With --buffer perf the BPF rings carry nothing; the programs still name
  // them (the transport is chosen at load time), so each is one page.
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
  if (int err = bpf_map__set_inner_map_fd(self->skel_->maps.rings, self->ring_fds_[0]))
    return make_error(fmt::format("cannot set the ring template: {}", errno_text(err)), -err);

  if (int err = tls_bpf__load(self->skel_))
    return make_error(fmt::format("cannot load the tls BPF programs: {} (run with --debug for the verifier log)",
                                  errno_text(err)),
                      -err);

  int outer = bpf_map__fd(self->skel_->maps.rings);
  for (uint32_t cpu = 0; cpu < self->ring_fds_.size(); ++cpu) {
    int fd = self->ring_fds_[cpu];
    if (bpf_map_update_elem(outer, &cpu, &fd, BPF_ANY)) {
      int err = errno;
      return make_error(fmt::format("cannot install the ring of CPU {}: {}", cpu, errno_text(err)), err);
    }
  }
  if (opts.perf) {
    // One perf ring per CPU for bpf_perf_event_output(BPF_F_CURRENT_CPU),
    // waking the reader once wakeup_bytes wait (or on every record).
    int perf_map = bpf_map__fd(self->skel_->maps.perf_events);
    for (uint32_t cpu = 0; cpu < static_cast<uint32_t>(ncpu); ++cpu) {
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
      if (ioctl(fd, PERF_EVENT_IOC_ENABLE, 0) || bpf_map_update_elem(perf_map, &cpu, &fd, BPF_ANY)) {
        int err = errno;
        return make_error(fmt::format("cannot install the perf event ring of CPU {}: {}", cpu, errno_text(err)), err);
      }
    }
  }
  return self;
}

TlsSkeleton::~TlsSkeleton() {
  if (skel_) tls_bpf__destroy(skel_);
  for (int fd : ring_fds_) close(fd);
  for (int fd : perf_fds_) close(fd);
}

std::vector<std::pair<std::string, int>> TlsSkeleton::programs() const {
  std::vector<std::pair<std::string, int>> out;
  bpf_program* p = nullptr;
  bpf_object__for_each_program(p, skel_->obj) {
    if (bpf_program__fd(p) >= 0) out.emplace_back(bpf_program__name(p), bpf_program__fd(p));
  }
  return out;
}

Result<std::array<uint64_t, CC_STAT__COUNT>> TlsSkeleton::read_stats() const {
  std::array<uint64_t, CC_STAT__COUNT> total{};
  int ncpu = libbpf_num_possible_cpus();
  std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpu));
  int fd = bpf_map__fd(skel_->maps.stats);
  for (uint32_t i = 0; i < CC_STAT__COUNT; ++i) {
    if (bpf_map_lookup_elem(fd, &i, per_cpu.data())) {
      int err = errno;
      return make_error(fmt::format("cannot read BPF counters: {}", errno_text(err)), err);
    }
    for (uint64_t v : per_cpu) total[i] += v;
  }
  return total;
}

Result<void> TlsSkeleton::set_filter(const cc_filter_cfg& cfg, const std::vector<uint32_t>& pids) {
  int pid_fd = bpf_map__fd(skel_->maps.pid_filter);
  // Add the new pids before switching the filter on, so no wanted event is
  // dropped in between; stale pids are removed afterwards.
  uint8_t one = 1;
  for (uint32_t pid : pids) {
    if (bpf_map_update_elem(pid_fd, &pid, &one, BPF_ANY)) {
      int err = errno;
      return make_error(fmt::format("cannot add pid {} to the BPF pid filter: {}", pid, errno_text(err)), err);
    }
  }
  uint32_t zero = 0;
  if (bpf_map_update_elem(bpf_map__fd(skel_->maps.filter_cfg), &zero, &cfg, BPF_ANY)) {
    int err = errno;
    return make_error(fmt::format("cannot update the BPF filter: {}", errno_text(err)), err);
  }
  std::vector<uint32_t> stale;
  uint32_t key = 0, next = 0;
  uint32_t* prev = nullptr;
  while (bpf_map_get_next_key(pid_fd, prev, &next) == 0) {
    bool wanted = false;
    for (uint32_t pid : pids) wanted |= (pid == next);
    if (!wanted) stale.push_back(next);
    key = next;
    prev = &key;
  }
  for (uint32_t pid : stale) bpf_map_delete_elem(pid_fd, &pid);
  return {};
}

}  // namespace clearcap
