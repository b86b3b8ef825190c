// Event -> eCaptureQ LogEntry (../shared/spec/ecaptureq.md), shared by the
// length-delimited protobuf output (--format proto) and the WebSocket event
// server (--ecaptureq).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "ecaptureq.pb.h"
#include "sinks/event_sink.h"

namespace clearcap {

// Event.type of the wire contract.
enum class EcqEventType : uint32_t {
  kUnknown = 0,
  kHttp1Request = 1,
  kHttp2Request = 2,
  kHttp1Response = 3,
  kHttp2Response = 4,
  kWebSocket = 5,
};

// Maps our payload classification (JSON "type") to Event.type.
EcqEventType ecq_event_type(std::string_view json_type);

// A 64-bit id chosen at random once per clearcap process: it goes into every
// uuid so that ids of two runs never collide (conn_id restarts at 1).
uint64_t run_id();

// Fills `entry` (LOG_TYPE_EVENT) with every Event field: timestamp (epoch ns),
// uuid "<run id>-<conn_id>-<w|r>" (stable per connection and direction),
// addresses and ports (empty/0 when the tuple is unknown), pid, pname (comm;
// bytes that are not UTF-8 become '?', as proto3 strings must be UTF-8),
// type, length (bytes of payload shown), payload. FormatOptions apply:
// `truncate` cuts the payload (nothing marks it: the wire contract has no
// field for that); `hex` sends a `hexdump -C` text of the bytes instead.
// Reusing one `entry` across calls reuses its string buffers: no allocation
// once they have grown.
void fill_log_entry(const Event& ev, const FormatOptions& opts, ecaptureq::LogEntry& entry);

// LOG_TYPE_PROCESS_LOG entry carrying one line of clearcap's own log.
void fill_log_line(std::string_view line, ecaptureq::LogEntry& entry);

// LOG_TYPE_HEARTBEAT entry: `count` is the per-client counter, `unix_s` the
// time in Unix seconds, message "heartbeat:<count>".
void fill_heartbeat(int64_t count, int64_t unix_s, ecaptureq::LogEntry& entry);

// Appends `msg` as writeDelimitedTo does: varint length, then the message.
void append_delimited(const google::protobuf::MessageLite& msg, std::string& out);

// --format proto: one length-delimited LogEntry per event.
// Thread: one instance per encoding thread.
class ProtoEncoder : public Encoder {
 public:
  explicit ProtoEncoder(FormatOptions opts) : opts_(opts) {}
  void encode(const Event& ev, std::string& out) override;
  void set_options(const FormatOptions& opts) override { opts_ = opts; }

 private:
  FormatOptions opts_;
  ecaptureq::LogEntry entry_;  // reused: keeps its buffers
};

}  // namespace clearcap
