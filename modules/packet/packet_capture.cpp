#include "modules/packet/packet_capture.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <fmt/format.h>

#include "clearcap_abi.h"
#include "modules/module_info.h"
#include "packet.skel.h"
#include "skel/skeleton.h"

namespace clearcap {

struct PacketCapture::Bpf {
  using Skel = Skeleton<packet_bpf, packet_bpf__open, packet_bpf__load, packet_bpf__destroy>;
  std::unique_ptr<Skel> skel;
};

PacketCapture::PacketCapture() : bpf_(std::make_unique<Bpf>()) {}

PacketCapture::~PacketCapture() { detach(); }

Result<std::unique_ptr<PacketCapture>> PacketCapture::create(const RingSet& rings, uint32_t snap_len) {
  const uint32_t max = rings.perf() ? CC_PACKET_MAX_PERF : CC_PACKET_MAX;
  if (snap_len == 0 || snap_len > max)
    return make_error(ErrorKind::kInvalid,
                      fmt::format("--snaplen {} is out of range 1..{}{}", snap_len, max,
                                  rings.perf() ? " with --buffer perf (a perf record's size is 16 bits)" : ""),
                      EINVAL);
  std::unique_ptr<PacketCapture> self(new PacketCapture());
  auto skel = Bpf::Skel::open_and_load("packet", [&](packet_bpf* s) -> Result<void> {
    if (auto r = use_ring_set(s, rings); !r) return r;
    s->rodata->snap_len = snap_len;
    // One 256 KiB packet scratch per CPU (too big for a per-CPU map value).
    bpf_map__set_max_entries(s->maps.pkt_scratch_map, static_cast<uint32_t>(libbpf_num_possible_cpus()));
    return {};
  });
  if (!skel) return tl::unexpected(skel.error());
  self->bpf_->skel = std::move(*skel);
  return self;
}

Result<void> PacketCapture::attach(int ifindex, const std::string& ifname, bool egress, bool ingress) {
  // BPF_TCX_INGRESS / BPF_TCX_EGRESS (kernel 6.6): Debian 12's libbpf 1.1
  // and uapi headers predate them, so the numbers are spelled out here;
  // bpf_link_create passes them through unchanged.
  constexpr int kTcxIngress = 46, kTcxEgress = 47;
  auto* s = bpf_->skel->raw();
  struct {
    bool want;
    bpf_program* prog;
    int attach_type;
    const char* name;
  } hooks[] = {{egress, s->progs.tc_egress, kTcxEgress, "egress"}, {ingress, s->progs.tc_ingress, kTcxIngress, "ingress"}};
  for (const auto& h : hooks) {
    if (!h.want) continue;
    int fd = bpf_link_create(bpf_program__fd(h.prog), ifindex, static_cast<bpf_attach_type>(h.attach_type), nullptr);
    if (fd < 0) {
      int err = -fd;
      return make_error(fmt::format("cannot attach the packet capture to the {} of {} (tcx link): {}{}", h.name,
                                    ifname, std::strerror(err),
                                    err == EINVAL ? " (tcx needs Linux 6.6 or later)" : ""),
                        err);
    }
    link_fds_.push_back(fd);
  }
  return {};
}

void PacketCapture::detach() {
  for (int fd : link_fds_) close(fd);  // closing a TCX link's fd detaches it
  link_fds_.clear();
}

std::vector<std::pair<std::string, int>> PacketCapture::programs() const { return bpf_->skel->programs(); }

}  // namespace clearcap
