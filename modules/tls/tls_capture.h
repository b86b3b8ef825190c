// The tls module's kernel side: loads the skeleton, sets the filters, learns
// each library's layouts (where the socket fd and, for keys, the secrets
// live), and attaches the uprobes on every target, plus the syscall
// tracepoints only while some target's fd layout is unknown.
// The rings, counters and filters are the run's RingSet (shared with the
// packet capture).
// Thread: one owner at a time. The configuration API calls retarget() from
// its own threads; the owner serializes those calls (one mutex) and stops
// the API before detach().
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <memory>
#include <string>
#include <vector>

#include "clearcap_abi.h"
#include "core/capture_module.h"
#include "core/probe_attacher.h"
#include "core/result.h"
#include "core/ring_set.h"
#include "modules/tls/tls_targets.h"

namespace clearcap {

class TlsCapture : public CaptureModule {
 public:
  struct Options {
    DiscoveryOptions discovery;
    bool keys = false; // learn each target's key layout and emit keys records at handshake completion
    bool data = true;  // hook SSL_read/SSL_write for plaintext; off in keylog mode (no per-byte traps)
    // When the syscall tracepoints run (they find the fd where the SSL
    // object cannot give it, and run for every syscall on the machine):
    // always; needed (some target's fd layout is unknown); auto (needed, or
    // while connections without a socket BIO are seen: want_syscall_fd);
    // never.
    enum class SyscallFd { kAlways, kNeeded, kAuto, kNever } syscall_fd = SyscallFd::kAuto;
  };

  static Result<std::unique_ptr<TlsCapture>> create(const Options& opts, const RingSet& rings);
  ~TlsCapture() override;

  // Detaches every probe (idempotent). Records already in
  // the rings stay.
  void detach() override;

  // Moves the uprobes to the targets `discovery` finds, keeping the rings,
  // the tracepoints and every probe whose (file, process) stays a target:
  // new probes are attached before the old ones go, so a target kept across
  // the change loses no call. On error nothing changes (the probes attached
  // so far are removed again). Records already in the rings stay. Not with
  // Options::keys (key layouts are learnt at start-up, by forking).
  Result<void> retarget(const DiscoveryOptions& discovery) override;

  const std::vector<TlsTarget>& targets() const override { return targets_; }
  size_t uprobes() const override { return probes_.uprobes(); }
  std::vector<Note> notes() const override;
  std::vector<std::pair<std::string, int>> programs() const override;
  // With Options::keys: how many targets give keys; notes() has one line
  // per target whose keys can be captured (with where they live; debug) and
  // one per target whose cannot (with why; a warning).
  size_t key_targets() const override { return key_targets_; }
  // Whether the system-wide syscall tracepoints are attached (some target's
  // fd layout is unknown, or --syscall-fd always).
  bool syscall_tracepoints() const override { return probes_.has_tracepoints(); }
  Result<void> want_syscall_fd(bool wanted) override;

  // Attaches the data probes to one more target with the same code as
  // create(), with no layouts (bench/probe_cost uses it on a test function
  // named as SSL_write).
  Result<void> attach_target(const TlsTarget& t) { return attach_target(t, kNoLayoutSlot, true); }

 private:
  static constexpr uint32_t kNoLayoutSlot = CC_MAX_LAYOUTS - 1;
  struct Slot {
    uint32_t index = kNoLayoutSlot;
    bool fd_known = false;
  };

  struct Bpf;
  TlsCapture();
  Result<void> attach_target(const TlsTarget& t, uint32_t slot, bool data);
  std::vector<ProbeSpec> probe_table(bool data) const;
  // The layout slot of a library file (by device and inode), learning its
  // layouts the first time the file is seen. Forks: see key_layout.h.
  Result<Slot> slot_for(const TlsTarget& t);
  // Attaches the syscall tracepoints when --syscall-fd says they are wanted
  // now (always; some target's fd layout is unknown; auto and on demand),
  // detaches them when not.
  Result<void> update_tracepoints();

  std::unique_ptr<Bpf> bpf_;
  ProbeAttacher probes_;
  std::vector<TlsTarget> targets_;
  std::vector<std::string> notes_;
  bool keys_ = false;
  bool data_ = true;
  std::vector<Note> key_notes_;
  size_t key_targets_ = 0;
  std::vector<std::string> fd_notes_;
  std::map<std::pair<uint64_t, uint64_t>, Slot> slots_;  // (st_dev, st_ino) -> slot
  uint32_t next_slot_ = 0;
  bool fd_unknown_ = false;  // some attached target reads its fd from syscalls
  Options::SyscallFd syscall_fd_ = Options::SyscallFd::kAuto;
  bool demand_ = false;  // kAuto: socketless connections were seen lately
  // How long a layout probe may take: at start-up, and later (the API's
  // retarget forks while other threads run; a child stuck on a lock another
  // thread held at the fork is killed then, and the file uses syscalls).
  static constexpr int kLayoutTimeoutStartMs = 20000, kLayoutTimeoutRunningMs = 5000;
  int layout_timeout_ms_ = kLayoutTimeoutStartMs;
};

}  // namespace clearcap
