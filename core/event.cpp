#include "core/event.h"

#include "core/source_table.h"

#include <cstring>

namespace clearcap {

namespace {

DecodeStatus decode_keys(std::span<const uint8_t> bytes, const cc_record_hdr& hdr, Event& out) {
  if (hdr.hdr_len != sizeof(cc_keys_event) || hdr.data_len != 0) return DecodeStatus::kInvalid;
  if (bytes.size() < sizeof(cc_keys_event)) return DecodeStatus::kNeedsMoreData;
  cc_keys_event k;
  std::memcpy(&k, bytes.data(), sizeof(k));
  const auto* base = bytes.data();
  out = Event{};
  out.record_type = CC_REC_KEYS;
  out.boot_ns = k.ts_ns;
  out.pid = k.pid;
  out.tid = k.tid;
  out.conn_id = k.conn_id;
  out.family = k.family;
  out.sport = k.sport;
  out.dport = k.dport;
  if (k.family) out.flags = CC_FLAG_HAS_TUPLE;
  out.saddr = base + offsetof(cc_keys_event, laddr);
  out.daddr = base + offsetof(cc_keys_event, raddr);
  const char* comm = reinterpret_cast<const char*>(base + offsetof(cc_keys_event, comm));
  out.comm = std::string_view(comm, strnlen(comm, CC_COMM_LEN));
  out.record = bytes.first(sizeof(cc_keys_event));
  return DecodeStatus::kSuccess;
}

DecodeStatus decode_packet(std::span<const uint8_t> bytes, const cc_record_hdr& hdr, Event& out) {
  if (hdr.hdr_len != sizeof(cc_packet_event) || hdr.data_len > CC_PACKET_MAX) return DecodeStatus::kInvalid;
  if (bytes.size() < size_t{hdr.hdr_len} + hdr.data_len) return DecodeStatus::kNeedsMoreData;
  cc_packet_event p;
  std::memcpy(&p, bytes.data(), sizeof(p));
  if (p.direction > CC_PKT_INGRESS || p.wire_len < hdr.data_len) return DecodeStatus::kInvalid;
  out = Event{};
  out.record_type = CC_REC_PACKET;
  out.boot_ns = p.ts_ns;
  out.ifindex = p.ifindex;
  out.wire_len = p.wire_len;
  out.direction = p.direction == CC_PKT_INGRESS ? Direction::kRead : Direction::kWrite;
  out.flags = p.flags;
  out.payload = bytes.subspan(hdr.hdr_len, hdr.data_len);
  out.record = bytes.first(size_t{hdr.hdr_len} + hdr.data_len);
  return DecodeStatus::kSuccess;
}

}  // namespace

DecodeStatus decode_record(std::span<const uint8_t> bytes, Event& out) {
  if (bytes.size() < sizeof(cc_record_hdr)) return DecodeStatus::kNeedsMoreData;
  cc_record_hdr hdr;
  std::memcpy(&hdr, bytes.data(), sizeof(hdr));
  if (hdr.type == CC_REC_KEYS) return decode_keys(bytes, hdr, out);
  if (hdr.type == CC_REC_PACKET) return decode_packet(bytes, hdr, out);
  if (hdr.type != CC_REC_DATA) return hdr.type == 0 ? DecodeStatus::kInvalid : DecodeStatus::kIgnored;
  if (hdr.hdr_len != sizeof(cc_data_event) || hdr.data_len > CC_CHUNK_MAX) return DecodeStatus::kInvalid;
  if (bytes.size() < size_t{hdr.hdr_len} + hdr.data_len) return DecodeStatus::kNeedsMoreData;

  // Ring records are 8-byte aligned, but a record may come from a file or a
  // test buffer: copy the fixed part instead of casting.
  cc_data_event ev;
  std::memcpy(&ev, bytes.data(), sizeof(ev));
  if (ev.direction > CC_DIR_READ) return DecodeStatus::kInvalid;
  if (ev.call_off > ev.call_len || ev.call_len - ev.call_off < hdr.data_len) return DecodeStatus::kInvalid;

  const auto* base = bytes.data();
  out.boot_ns = ev.ts_ns;
  out.pid = ev.pid;
  out.tid = ev.tid;
  out.uid = ev.uid;
  out.fd = ev.fd;
  out.cgroup_id = ev.cgroup_id;
  out.conn_id = ev.conn_id;
  out.seq = ev.seq;
  out.call_len = ev.call_len;
  out.call_off = ev.call_off;
  out.direction = static_cast<Direction>(ev.direction);
  out.source = ev.source;
  out.family = ev.family;
  out.sport = ev.sport;
  out.dport = ev.dport;
  out.flags = ev.flags;
  out.saddr = base + offsetof(cc_data_event, saddr);
  out.daddr = base + offsetof(cc_data_event, daddr);
  const char* comm = reinterpret_cast<const char*>(base + offsetof(cc_data_event, comm));
  out.comm = std::string_view(comm, strnlen(comm, CC_COMM_LEN));
  out.payload = bytes.subspan(hdr.hdr_len, hdr.data_len);
  out.record_type = CC_REC_DATA;
  out.ifindex = 0;
  out.wire_len = 0;
  out.record = bytes.first(size_t{hdr.hdr_len} + hdr.data_len);
  return DecodeStatus::kSuccess;
}

std::string_view direction_name(Direction d) { return d == Direction::kRead ? "read" : "write"; }

std::string_view Event::module() const {
  if (record_type == CC_REC_PACKET) return "pcap";
  if (record_type == CC_REC_KEYS) return "keys";
  return source_info(source).module;
}

std::string_view source_name(uint8_t source) { return source_info(source).function; }

}  // namespace clearcap
