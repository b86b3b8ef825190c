// Decoded view of one ring record, as handed from the processor to the sinks.
// A view: payload and comm point into the batch that holds the record and are
// valid only during the sink call that receives it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>

#include "clearcap_abi.h"

namespace clearcap {

namespace http {
struct Message;
struct Exchange;
}  // namespace http

// What an event's bytes are, as the protocol layer (proto/http/stage.h)
// decided per connection and message; kUnset where no stage ran.
enum class PayloadKind : uint8_t {
  kUnset,
  kData,  // not a protocol the layer understands
  kHttp1Request,
  kHttp2Request,
  kHttp1Response,
  kHttp2Response,
  kWebSocket,  // after an HTTP/1.1 upgrade to websocket
  kHttpExchange,
};

// Records the protocol layer adds in memory (never in a ring or a capture
// file: they are derived again from the data whenever it is replayed).
constexpr uint16_t kRecHttpMessage = 0x100;   // `http` is set
constexpr uint16_t kRecHttpExchange = 0x101;  // `exchange` is set

enum class Direction : uint8_t { kWrite = CC_DIR_WRITE, kRead = CC_DIR_READ };

struct Event {
  uint64_t wall_ns = 0;  // Unix epoch nanoseconds (boot-time offset applied)
  uint64_t boot_ns = 0;  // raw bpf_ktime_get_boot_ns()
  uint32_t pid = 0;
  uint32_t tid = 0;
  uint32_t uid = 0;
  int32_t fd = -1;
  uint64_t cgroup_id = 0;
  uint64_t conn_id = 0;
  uint64_t seq = 0;       // offset of payload[0] in the connection+direction stream
  uint32_t call_len = 0;  // bytes the library call transferred (all chunks)
  uint32_t call_off = 0;  // offset of this chunk within the call
  Direction direction = Direction::kWrite;
  uint8_t source = 0;     // enum cc_source
  uint16_t family = 0;    // AF_INET/AF_INET6, 0 = tuple unknown
  uint16_t sport = 0;
  uint16_t dport = 0;
  uint32_t flags = 0;     // CC_FLAG_*
  const uint8_t* saddr = nullptr;  // 16 bytes (IPv4 in the first 4), network order
  const uint8_t* daddr = nullptr;
  std::string_view comm;
  std::span<const uint8_t> payload;
  // CC_REC_DATA, CC_REC_KEYS or CC_REC_PACKET. A keys record has no
  // payload: `record` holds its raw bytes (a cc_keys_event, possibly
  // unaligned: memcpy it). A packet's payload is its captured bytes from the
  // link-layer header on; direction kWrite = egress (sent), kRead = ingress;
  // flags are CC_PKT_*.
  uint16_t record_type = CC_REC_DATA;
  // The whole record as the kernel wrote it (header, fixed part, payload):
  // what a capture file keeps. Empty for events built in memory.
  std::span<const uint8_t> record;
  uint32_t ifindex = 0;   // packets: interface
  uint32_t wire_len = 0;  // packets: length on the wire (>= payload.size())
  // Set by the protocol layer. A data event's kind; `consumed`: every byte
  // of it went into a message the layer understood (text output then shows
  // the message rather than the bytes).
  PayloadKind kind = PayloadKind::kUnset;
  bool consumed = false;
  const http::Message* http = nullptr;       // kRecHttpMessage
  const http::Exchange* exchange = nullptr;  // kRecHttpExchange

  bool has_tuple() const { return (flags & CC_FLAG_HAS_TUPLE) && family != 0; }
  // The module that produced the event: from the data record's source
  // (core/source_table.h); "pcap" for packets, "keys" for keys records.
  // Looked up when rendered, not when decoded (the decoder is the hot path).
  std::string_view module() const;
  bool last_chunk() const { return flags & CC_FLAG_LAST_CHUNK; }
};

enum class DecodeStatus {
  kSuccess,
  kNeedsMoreData,  // shorter than its header says (truncated)
  kInvalid,        // garbage: unknown type, impossible lengths
  kIgnored,        // valid record of a type this decoder does not handle
};

// Decodes one record (the bytes of one ring sample). On kSuccess, `out`
// points into `bytes`; wall_ns is left 0 for the caller to set.
DecodeStatus decode_record(std::span<const uint8_t> bytes, Event& out);

// "write"/"read"
std::string_view direction_name(Direction d);
// The library function of a source (core/source_table.h), "unknown" if none.
std::string_view source_name(uint8_t source);

}  // namespace clearcap
