// The headers of one captured packet, as far as -m pcap needs them: the TCP
// connection it belongs to (both ways), its TCP flags and its payload.
// Free functions without state: PcapSink calls them on the processor thread,
// fuzz/fuzz_packet_headers.cpp on arbitrary bytes.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

namespace clearcap {

// A TCP connection or direction: [0] IP version, [2..19] first endpoint,
// [20..37] second (see put_endpoint).
using ConnKey = std::array<uint8_t, 40>;

struct PacketHeaders {
  bool tcp = false;
  ConnKey conn{};    // normalized: lower endpoint first
  ConnKey sender{};  // directed: source endpoint, then destination
  uint8_t tcp_flags = 0;
  std::span<const uint8_t> payload;  // the TCP payload, inside the packet
};

// `linktype` is pcapng::kLinktypeEthernet (one VLAN tag is skipped) or
// pcapng::kLinktypeRaw. False when the packet is too short for its link or
// IP header; otherwise true, with `tcp` set only when a whole TCP header is
// there (not in a later IPv4 fragment; IPv6 extension headers are not
// followed).
bool parse_packet_headers(std::span<const uint8_t> pkt, uint16_t linktype, PacketHeaders& p);

// Endpoint bytes (18): 16 address bytes (IPv4 in the first 4), port big-endian.
void put_endpoint(uint8_t* dst, const uint8_t* addr, size_t alen, uint16_t port_host);
// The directed key (a, then b) and the normalized one (lower endpoint first).
void make_keys(uint8_t version, const uint8_t* a, const uint8_t* b, ConnKey& directed, ConnKey& normalized);

}  // namespace clearcap
