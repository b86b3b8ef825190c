// A captured packet through parse_packet_headers, the pcap sink's parser
// that finds a packet's TCP connection. The first input byte chooses the
// link type (even: Ethernet, odd: raw IP), the rest is the packet from its
// link-layer header on, as a packet record carries it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>

#include "sinks/encoders/pcapng_blocks.h"
#include "sinks/packet_headers.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint16_t linktype = (data[0] & 1) ? clearcap::pcapng::kLinktypeRaw : clearcap::pcapng::kLinktypeEthernet;
  const std::span<const uint8_t> pkt(data + 1, size - 1);
  clearcap::PacketHeaders p;
  if (!clearcap::parse_packet_headers(pkt, linktype, p) || !p.tcp) return 0;
  // The payload is a view inside the packet, and both keys name one connection.
  if (p.payload.data() < pkt.data() || p.payload.data() + p.payload.size() > pkt.data() + pkt.size()) std::abort();
  if (p.conn[0] != p.sender[0]) std::abort();
  uint64_t sum = p.tcp_flags;
  for (uint8_t b : p.payload) sum += b;
  volatile uint64_t keep = sum;
  (void)keep;
  return 0;
}
