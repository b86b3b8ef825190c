#include "sinks/packet_headers.h"

#include <cstring>

#include "sinks/encoders/pcapng_blocks.h"

namespace clearcap {

void put_endpoint(uint8_t* dst, const uint8_t* addr, size_t alen, uint16_t port_host) {
  std::memset(dst, 0, 18);
  std::memcpy(dst, addr, alen);
  dst[16] = static_cast<uint8_t>(port_host >> 8);
  dst[17] = static_cast<uint8_t>(port_host);
}

void make_keys(uint8_t version, const uint8_t* a, const uint8_t* b, ConnKey& directed, ConnKey& normalized) {
  directed.fill(0);
  directed[0] = version;
  std::memcpy(&directed[2], a, 18);
  std::memcpy(&directed[20], b, 18);
  normalized = directed;
  if (std::memcmp(a, b, 18) > 0) {
    std::memcpy(&normalized[2], b, 18);
    std::memcpy(&normalized[20], a, 18);
  }
}

bool parse_packet_headers(std::span<const uint8_t> pkt, uint16_t linktype, PacketHeaders& p) {
  size_t off = 0;
  uint16_t ethertype = 0;
  if (linktype == pcapng::kLinktypeEthernet) {
    if (pkt.size() < 14) return false;
    ethertype = static_cast<uint16_t>(pkt[12] << 8 | pkt[13]);
    off = 14;
    if (ethertype == 0x8100 && pkt.size() >= 18) {  // one VLAN tag
      ethertype = static_cast<uint16_t>(pkt[16] << 8 | pkt[17]);
      off = 18;
    }
  } else {
    if (pkt.empty()) return false;
    ethertype = (pkt[0] >> 4) == 6 ? 0x86DD : 0x0800;
  }
  const uint8_t* ip = pkt.data() + off;
  size_t left = pkt.size() - off;
  uint8_t version, proto;
  size_t ip_len, alen, payload_end;
  const uint8_t *src, *dst;
  if (ethertype == 0x0800) {
    if (left < 20 || (ip[0] >> 4) != 4) return false;
    ip_len = size_t{ip[0] & 0x0fu} * 4;
    if (ip_len < 20 || left < ip_len) return false;
    if ((ip[6] & 0x1f) != 0 || ip[7] != 0) return true;  // a later fragment: no TCP header
    proto = ip[9];
    version = 4;
    alen = 4;
    src = ip + 12;
    dst = ip + 16;
    size_t total = static_cast<size_t>(ip[2] << 8 | ip[3]);
    // A GSO packet captured before segmentation may carry 0 here.
    payload_end = (total >= ip_len && total <= left) ? total : left;
  } else if (ethertype == 0x86DD) {
    if (left < 40 || (ip[0] >> 4) != 6) return false;
    ip_len = 40;
    proto = ip[6];  // extension headers are not followed: such packets are never held
    version = 6;
    alen = 16;
    src = ip + 8;
    dst = ip + 24;
    size_t plen = static_cast<size_t>(ip[4] << 8 | ip[5]);
    payload_end = (plen && 40 + plen <= left) ? 40 + plen : left;
  } else {
    return true;  // not IP: written as is
  }
  if (proto != 6 || payload_end < ip_len + 20) return true;
  const uint8_t* tcp = ip + ip_len;
  size_t tcp_len = (size_t{tcp[12]} >> 4) * 4;
  if (tcp_len < 20 || ip_len + tcp_len > payload_end) return true;
  uint8_t a[18], b[18];
  put_endpoint(a, src, alen, static_cast<uint16_t>(tcp[0] << 8 | tcp[1]));
  put_endpoint(b, dst, alen, static_cast<uint16_t>(tcp[2] << 8 | tcp[3]));
  make_keys(version, a, b, p.sender, p.conn);
  p.tcp = true;
  p.tcp_flags = tcp[13];
  p.payload = std::span<const uint8_t>(tcp + tcp_len, payload_end - ip_len - tcp_len);
  return true;
}

}  // namespace clearcap
