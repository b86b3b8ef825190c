#include "sinks/packet_filter.h"

#include <pcap/pcap.h>

#include <fmt/format.h>

namespace clearcap {

struct PacketFilter::Program {
  bpf_program prog{};
  ~Program() { pcap_freecode(&prog); }
};

Result<std::unique_ptr<PacketFilter>> PacketFilter::compile(const std::string& expression, Link link,
                                                            uint32_t snaplen) {
  std::unique_ptr<PacketFilter> f(new PacketFilter());
  f->expression_ = expression;
  if (expression.empty()) return f;
  // A dead handle: compiling needs only the link type and snap length.
  pcap_t* dead = pcap_open_dead(link == Link::kRaw ? DLT_RAW : DLT_EN10MB, static_cast<int>(snaplen));
  if (!dead) return make_error("libpcap: cannot create a handle to compile the filter", ENOMEM);
  bpf_program prog{};
  if (pcap_compile(dead, &prog, expression.c_str(), 1, PCAP_NETMASK_UNKNOWN) != 0) {
    std::string why = pcap_geterr(dead);
    pcap_close(dead);
    return make_error(fmt::format("bad filter expression '{}': {} (pcap-filter(7) syntax, e.g. 'tcp port 443')",
                                  expression, why),
                      EINVAL);
  }
  pcap_close(dead);
  f->prog_ = std::make_unique<Program>();
  f->prog_->prog = prog;
  return f;
}

PacketFilter::~PacketFilter() = default;

bool PacketFilter::matches(std::span<const uint8_t> data, uint32_t wire_len) const {
  if (!prog_) return true;
  pcap_pkthdr hdr{};
  hdr.caplen = static_cast<bpf_u_int32>(data.size());
  hdr.len = wire_len;
  return pcap_offline_filter(&prog_->prog, &hdr, data.data()) != 0;
}

}  // namespace clearcap
