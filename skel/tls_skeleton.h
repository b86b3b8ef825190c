// The one C++ owner of the generated tls skeleton (bpf/tls.bpf.c).
// Lifecycle as in libbpf-bootstrap: open -> configure -> load -> attach ->
// destroy. Rings are created here (one per possible CPU) and installed in the
// ARRAY_OF_MAPS before any program can run.
// Thread: not thread-safe; owned by the thread that runs the capture.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "clearcap_abi.h"
#include "core/result.h"

struct tls_bpf;
struct bpf_link;
struct bpf_program;

namespace clearcap {

class TlsSkeleton {
 public:
  struct Options {
    uint32_t ring_bytes = 4u << 20;    // per CPU; a power of two, multiple of the page size
    uint64_t wakeup_bytes = 1u << 20;  // wake the reader once this much waits; 0 = every record
    uint32_t snap_len = CC_PACKET_MAX; // tc packet capture: bytes copied per packet at most
    bool syscall_fd = true;            // the syscall tracepoints may be attached (keeps the in-call marks)
    // --buffer perf: a perf event ring per CPU (ring_bytes of data each)
    // instead of the BPF ring buffers; the BPF rings are then one page each.
    bool perf = false;
  };

  static Result<std::unique_ptr<TlsSkeleton>> open_and_load(const Options& opts);
  ~TlsSkeleton();
  TlsSkeleton(const TlsSkeleton&) = delete;
  TlsSkeleton& operator=(const TlsSkeleton&) = delete;

  tls_bpf* raw() { return skel_; }
  // The fds the readers consume, one per possible CPU, index = CPU: the BPF
  // rings, or with Options::perf the perf event rings.
  const std::vector<int>& ring_fds() const { return perf_ ? perf_fds_ : ring_fds_; }
  uint32_t ring_bytes() const { return ring_bytes_; }
  bool perf() const { return perf_; }

  // {name, fd} of every loaded program (program-time statistics).
  std::vector<std::pair<std::string, int>> programs() const;
  // Sums the per-CPU counters (enum cc_stat).
  Result<std::array<uint64_t, CC_STAT__COUNT>> read_stats() const;
  // Run-time filters, applied in place.
  Result<void> set_filter(const cc_filter_cfg& cfg, const std::vector<uint32_t>& pids);

 private:
  TlsSkeleton() = default;
  tls_bpf* skel_ = nullptr;
  std::vector<int> ring_fds_;
  std::vector<int> perf_fds_;
  uint32_t ring_bytes_ = 0;
  bool perf_ = false;
};

}  // namespace clearcap
