// The rings, counters and filter maps every probe family writes to and
// reads from: one BPF ring buffer (or perf ring) per CPU behind the outer
// map "rings", the per-CPU loss counters "stats", and the run-time filters
// "filter_cfg"/"pid_filter" (bpf/include/common.bpf.h declares them in
// every family's object). They are created here once per run; each family's
// object takes them over before it is loaded (share_with), so the readers,
// the counters and the filters are one set whatever modules run.
// Thread: create() and share_with() on the owning thread before any reader
// runs; read_stats() from any thread; set_filter() from one thread at a time
// (the capture session serialises control calls).
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "clearcap_abi.h"
#include "core/cgroup.h"
#include "core/result.h"

struct bpf_object;

namespace clearcap {

class RingSet {
 public:
  struct Options {
    uint32_t ring_bytes = 4u << 20;    // per CPU; a power of two, multiple of the page size
    uint64_t wakeup_bytes = 1u << 20;  // wake the reader once this much waits; 0 = every record
    // Perf event rings (one per CPU, ring_bytes of data each) instead of
    // BPF ring buffers; the BPF rings are then one page each (the programs
    // still name them: the transport is chosen at load time).
    bool perf = false;
  };

  static Result<std::unique_ptr<RingSet>> create(const Options& opts);
  // The default ring size per CPU: an 8 MiB budget spread over the possible
  // CPUs, within 4..8 MiB per ring (a power of two, in pages).
  static uint32_t default_ring_bytes();
  ~RingSet();
  RingSet(const RingSet&) = delete;
  RingSet& operator=(const RingSet&) = delete;

  // Before `obj` is loaded: its maps of the shared names use these maps.
  Result<void> share_with(bpf_object* obj) const;

  const Options& options() const { return opts_; }
  // The fds the readers consume, one per possible CPU (index = CPU): the BPF
  // rings, or with Options::perf the perf event rings of the online CPUs.
  const std::vector<int>& ring_fds() const { return opts_.perf ? perf_fds_ : ring_fds_; }
  uint32_t ring_bytes() const { return opts_.ring_bytes; }
  bool perf() const { return opts_.perf; }

  // Sums the per-CPU counters (enum cc_stat) of every family.
  Result<std::array<uint64_t, CC_STAT__COUNT>> read_stats() const;
  // One of them (one lookup: cheap enough to poll).
  Result<uint64_t> read_stat(uint32_t idx) const;
  // Run-time filters, applied in place: empty `pids` = every process, uid 0
  // = every user, cgroup id 0 = every cgroup (else its whole subtree).
  Result<void> set_filter(const std::vector<int>& pids, uint32_t uid, const Cgroup& cgroup = {});

 private:
  RingSet() = default;
  Options opts_;
  std::vector<int> ring_fds_;
  std::vector<int> perf_fds_;
  int outer_fd_ = -1, stats_fd_ = -1, filter_fd_ = -1, pid_filter_fd_ = -1, perf_map_fd_ = -1, wake_fd_ = -1;
  uint32_t generation_ = 0;
};

}  // namespace clearcap
