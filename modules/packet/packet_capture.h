// Packets (-m pcap): loads bpf/packet.bpf.c into the run's RingSet and
// attaches its tc programs to one interface as TCX links (kernel 6.6+). A
// link lives as long as its fd: no qdisc is created or removed, other tc
// programs on the interface (and other tools' clsact filters) are left
// alone, and a crash detaches them too.
// Thread: one owner; detach() before the RingSet goes.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/result.h"
#include "core/ring_set.h"

namespace clearcap {

class PacketCapture {
 public:
  static Result<std::unique_ptr<PacketCapture>> create(const RingSet& rings, uint32_t snap_len);
  ~PacketCapture();

  Result<void> attach(int ifindex, const std::string& ifname, bool egress, bool ingress);
  void detach();
  std::vector<std::pair<std::string, int>> programs() const;

 private:
  struct Bpf;
  PacketCapture();
  std::unique_ptr<Bpf> bpf_;
  std::vector<int> link_fds_;
};

}  // namespace clearcap
