// The tls module's kernel side: loads the skeleton, sets the filters, learns
// each library's layouts (where the socket fd and, for keys, the secrets
// live), and attaches the uprobes on every target, plus the syscall
// tracepoints only while some target's fd layout is unknown.
// Thread: one owner at a time. The configuration API calls set_filter() and
// retarget() from its own threads while the command's thread only reads
// counters through skeleton(); the owner serializes those calls (one mutex)
// and stops the API before detach().
#pragma once

#include <cstdint>
#include <map>
#include <utility>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "modules/tls/tls_targets.h"
#include "skel/tls_skeleton.h"

struct bpf_link;

namespace clearcap {

class TlsCapture {
 public:
  struct Options {
    TlsSkeleton::Options skel;
    DiscoveryOptions discovery;
    uint32_t uid = 0;  // 0 = all users
    bool keys = false; // learn each target's key layout and emit keys records at handshake completion
    bool data = true;  // hook SSL_read/SSL_write for plaintext; off in keylog mode (no per-byte traps)
    // When the syscall tracepoints run (they find the fd where the SSL
    // object cannot give it, and run for every syscall on the machine).
    enum class SyscallFd { kAlways, kNeeded, kNever } syscall_fd = SyscallFd::kAlways;
  };

  static Result<std::unique_ptr<TlsCapture>> create(const Options& opts);
  ~TlsCapture();

  // Detaches every probe and packet hook (idempotent). Records already in
  // the rings stay.
  void detach();

  // Run-time filters through the BPF maps (nothing is detached). Empty
  // `pids` = every process; uid 0 = every user; cgroup_id 0 = every cgroup.
  Result<void> set_filter(const std::vector<int>& pids, uint32_t uid, uint64_t cgroup_id);

  // Moves the uprobes to the targets `discovery` finds, keeping the rings,
  // the tracepoints and every probe whose (file, process) stays a target:
  // new probes are attached before the old ones go, so a target kept across
  // the change loses no call. On error nothing changes (the probes attached
  // so far are removed again). Records already in the rings stay. Not with
  // Options::keys (key layouts are learnt at start-up, by forking).
  Result<void> retarget(const DiscoveryOptions& discovery);
  // Packets (-m pcap): attaches the tc programs to the interface, egress
  // and/or ingress, as TCX links (kernel 6.6+). A link lives as long as its
  // fd: no qdisc is created or removed, other tc programs on the interface
  // (and other tools' clsact filters) are left alone, and a crash detaches
  // them too.
  Result<void> attach_packets(int ifindex, const std::string& ifname, bool egress, bool ingress);

  TlsSkeleton& skeleton() { return *skel_; }
  const std::vector<TlsTarget>& targets() const { return targets_; }
  const std::vector<std::string>& notes() const { return notes_; }
  size_t uprobes() const { return uprobes_; }
  // With Options::keys: one line per target whose keys can be captured
  // (with where they live; debug) and one per target whose cannot (with
  // why; a warning).
  const std::vector<Note>& key_notes() const { return key_notes_; }
  size_t key_targets() const { return key_targets_; }
  // One line per library file: where its socket fd is read from (the
  // learned layout, or the syscall tracepoints and why), for --debug.
  const std::vector<std::string>& fd_notes() const { return fd_notes_; }
  // Whether the system-wide syscall tracepoints are attached (some target's
  // fd layout is unknown).
  bool syscall_tracepoints() const { return !tracepoint_links_.empty(); }

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

  TlsCapture() = default;
  Result<void> attach_target(const TlsTarget& t, uint32_t slot, bool data);
  // The layout slot of a library file (by device and inode), learning its
  // layouts the first time the file is seen. Forks: see key_layout.h.
  Result<Slot> slot_for(const TlsTarget& t);
  // Attaches the syscall tracepoints when some target's fd layout is
  // unknown, detaches them when none is.
  Result<void> update_tracepoints();
  Result<void> attach_tracepoints();
  // One attachment unit: a file and one process in it (-1 = every process
  // mapping the file). Its links are in attachment order (entries first).
  using ProbeKey = std::pair<std::string, int>;
  static std::vector<ProbeKey> keys_of(const TlsTarget& t);
  Result<std::vector<bpf_link*>> attach_probes(const TlsTarget& t, int pid, uint32_t slot, bool data);
  static void destroy(std::vector<bpf_link*>& links);
  void recount();

  std::unique_ptr<TlsSkeleton> skel_;
  std::vector<TlsTarget> targets_;
  std::vector<std::string> notes_;
  std::vector<bpf_link*> tracepoint_links_;
  std::map<ProbeKey, std::vector<bpf_link*>> probe_links_;
  std::vector<int> tc_link_fds_;
  size_t uprobes_ = 0;
  bool keys_ = false;
  bool data_ = true;
  std::vector<Note> key_notes_;
  size_t key_targets_ = 0;
  std::vector<std::string> fd_notes_;
  std::map<std::pair<uint64_t, uint64_t>, Slot> slots_;  // (st_dev, st_ino) -> slot
  uint32_t next_slot_ = 0;
  bool fd_unknown_ = false;  // some attached target reads its fd from syscalls
  Options::SyscallFd syscall_fd_ = Options::SyscallFd::kAlways;
  uint32_t filter_generation_ = 0;
  // How long a layout probe may take: at start-up, and later (the API's
  // retarget forks while other threads run; a child stuck on a lock another
  // thread held at the fork is killed then, and the file uses syscalls).
  static constexpr int kLayoutTimeoutStartMs = 20000, kLayoutTimeoutRunningMs = 5000;
  int layout_timeout_ms_ = kLayoutTimeoutStartMs;
};

}  // namespace clearcap
