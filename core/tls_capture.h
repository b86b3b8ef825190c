// The tls module's kernel side: loads the skeleton, sets the filters, and
// attaches the syscall tracepoints and the uprobes on every target.
// Thread: one owner.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "core/tls_targets.h"
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
  };

  static Result<std::unique_ptr<TlsCapture>> create(const Options& opts);
  ~TlsCapture();

  // Detaches every probe and packet hook (idempotent). Records already in
  // the rings stay.
  void detach();

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
  // (with where they live) and one per target whose cannot (with why).
  const std::vector<std::string>& key_notes() const { return key_notes_; }
  size_t key_targets() const { return key_targets_; }

  // Attaches the data probes to one more target with the same code as
  // create() (bench/probe_cost uses it on a test function named as SSL_write).
  Result<void> attach_target(const TlsTarget& t) {
    return attach_target(t, static_cast<uint32_t>(targets_.size()), true);
  }

 private:
  TlsCapture() = default;
  Result<void> attach_target(const TlsTarget& t, uint32_t index, bool data);
  Result<void> learn_keys();
  Result<void> attach_tracepoints();

  std::unique_ptr<TlsSkeleton> skel_;
  std::vector<TlsTarget> targets_;
  std::vector<std::string> notes_;
  std::vector<bpf_link*> links_;
  std::vector<int> tc_link_fds_;
  size_t uprobes_ = 0;
  std::vector<std::string> key_notes_;
  size_t key_targets_ = 0;
};

}  // namespace clearcap
