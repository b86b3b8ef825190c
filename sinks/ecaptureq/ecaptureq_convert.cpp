#include "sinks/ecaptureq/ecaptureq_convert.h"

#include "sinks/encoders/http_render.h"

#include <random>

#include <google/protobuf/io/coded_stream.h>

#include "sinks/encoders/format_util.h"

namespace clearcap {

EcqEventType ecq_event_type(std::string_view json_type) {
  if (json_type == "http1_request") return EcqEventType::kHttp1Request;
  if (json_type == "http1_response") return EcqEventType::kHttp1Response;
  if (json_type == "http2_request") return EcqEventType::kHttp2Request;
  if (json_type == "http2_response") return EcqEventType::kHttp2Response;
  if (json_type == "websocket") return EcqEventType::kWebSocket;
  return EcqEventType::kUnknown;
}

uint64_t run_id() {
  static const uint64_t id = [] {
    std::random_device rd;  // /dev/urandom
    return (uint64_t{rd()} << 32) | rd();
  }();
  return id;
}

void fill_log_entry(const Event& ev, const FormatOptions& opts, ecaptureq::LogEntry& entry) {
  entry.set_log_type(ecaptureq::LOG_TYPE_EVENT);
  ecaptureq::Event* e = entry.mutable_event_payload();
  const ShownPayload shown = shown_payload(ev, opts);
  const AddrFamily family = addr_family(ev);
  const bool known = family != AddrFamily::kUnknown;

  e->set_timestamp(static_cast<int64_t>(ev.wall_ns));
  std::string* uuid = e->mutable_uuid();
  uuid->clear();
  {
    char buf[64];
    char* p = buf;
    const uint64_t id = run_id();
    for (int shift = 60; shift >= 0; shift -= 4) *p++ = kHexDigits[(id >> shift) & 0xf];
    *p++ = '-';
    p = write_uint(p, ev.conn_id);
    *p++ = '-';
    *p++ = ev.direction == Direction::kWrite ? 'w' : 'r';
    uuid->append(buf, p);
  }
  const IpText src(family, ev.saddr), dst(family, ev.daddr);
  e->mutable_src_ip()->assign(src.view());
  e->set_src_port(known ? ev.sport : 0);
  e->mutable_dst_ip()->assign(dst.view());
  e->set_dst_port(known ? ev.dport : 0);
  e->set_pid(ev.pid);
  // pname is a proto3 string: it must be UTF-8 (parsers reject the message
  // otherwise), while a process may name itself with any bytes.
  std::string* pname = e->mutable_pname();
  pname->assign(ev.comm);
  if (!is_valid_utf8(ev.comm)) {
    for (char& c : *pname)
      if (static_cast<uint8_t>(c) >= 0x80) c = '?';
  }
  e->set_type(static_cast<uint32_t>(ecq_event_type(payload_type(ev))));
  if (ev.http || ev.exchange) {
    // A parsed message: the request/response as text (spec: "for parsed
    // HTTP: the request/response as text"); an exchange: its summary line.
    std::string* payload = e->mutable_payload();
    payload->clear();
    render_http_event(ev, opts.hex, *payload);
    e->set_length(static_cast<uint32_t>(payload->size()));
    return;
  }
  e->set_length(static_cast<uint32_t>(shown.bytes.size()));
  std::string* payload = e->mutable_payload();
  payload->clear();
  if (opts.hex) {
    LineWriter w(*payload);
    append_hex_dump(w, shown.bytes);
    w.finish();
  } else {
    payload->append(as_chars(shown.bytes));
  }
}

void fill_log_line(std::string_view line, ecaptureq::LogEntry& entry) {
  entry.set_log_type(ecaptureq::LOG_TYPE_PROCESS_LOG);
  entry.mutable_run_log()->assign(line);
}

void fill_heartbeat(int64_t count, int64_t unix_s, ecaptureq::LogEntry& entry) {
  entry.set_log_type(ecaptureq::LOG_TYPE_HEARTBEAT);
  auto* hb = entry.mutable_heartbeat_payload();
  hb->set_timestamp(unix_s);
  hb->set_count(count);
  hb->set_message("heartbeat:" + std::to_string(count));
}

void append_delimited(const google::protobuf::MessageLite& msg, std::string& out) {
  const size_t n = msg.ByteSizeLong();
  uint8_t len[10];
  uint8_t* end = google::protobuf::io::CodedOutputStream::WriteVarint64ToArray(n, len);
  const size_t start = out.size();
  out.resize(start + static_cast<size_t>(end - len) + n);
  char* p = out.data() + start;
  std::memcpy(p, len, static_cast<size_t>(end - len));
  p += end - len;
  // ByteSizeLong() above cached the sizes this call relies on.
  msg.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(p));
}

void ProtoEncoder::encode(const Event& ev, std::string& out) {
  fill_log_entry(ev, opts_, entry_);
  append_delimited(entry_, out);
}

}  // namespace clearcap
