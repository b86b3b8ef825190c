#include "sinks/encoders/json_encoder.h"

#include <array>
#include <string_view>

#include "sinks/encoders/format_util.h"
#include "sinks/encoders/http_render.h"
#include "proto/http/message.h"

namespace clearcap {
namespace {

// Per byte: 0 = copy as is, 'u' = \u00XX, else the letter after the backslash.
// JSON (RFC 8259) requires escaping '"', '\' and bytes < 0x20; 0x7f is escaped
// as well so that a terminal showing the line never receives a raw DEL.
constexpr std::array<char, 256> kEscape = [] {
  std::array<char, 256> t{};
  for (int c = 0; c < 0x20; ++c) t[c] = 'u';
  t['\b'] = 'b';
  t['\f'] = 'f';
  t['\n'] = 'n';
  t['\r'] = 'r';
  t['\t'] = 't';
  t['"'] = '"';
  t['\\'] = '\\';
  t[0x7f] = 'u';
  return t;
}();

bool needs_escape(uint8_t c, bool escape_high) {
  return kEscape[c] != 0 || (escape_high && c >= 0x80);
}

// Index of the first byte at or after `i` that needs escaping, or s.size().
size_t next_escape(std::string_view s, size_t i, bool escape_high) {
  const uint8_t high_bit = escape_high ? 0x80 : 0;
  return find_byte(
      s, i,
      [high_bit](Bytes16 v) {
        return (v < 0x20) | (v == '"') | (v == '\\') | (v == 0x7f) | ((v & high_bit) != 0);
      },
      [escape_high](uint8_t c) { return needs_escape(c, escape_high); });
}

// Appends `s` as a quoted JSON string. With `escape_high`, bytes >= 0x80 are
// written as \u00XX (their Latin-1 code point): used for strings that are not
// valid UTF-8, so that the line stays valid JSON and every byte is recoverable.
void append_json_string(LineWriter& w, std::string_view s, bool escape_high) {
  w.put('"');
  size_t run = 0;  // start of the bytes not yet written
  for (size_t i = next_escape(s, 0, escape_high); i < s.size();
       i = next_escape(s, i + 1, escape_high)) {
    w.put(s.substr(run, i - run));
    run = i + 1;
    const auto c = static_cast<uint8_t>(s[i]);
    const char esc = kEscape[c] != 0 ? kEscape[c] : 'u';
    if (esc == 'u') {
      const char u[] = {'\\', 'u', '0', '0', kHexDigits[c >> 4], kHexDigits[c & 0xf]};
      w.put({u, sizeof(u)});
    } else {
      const char e[] = {'\\', esc};
      w.put({e, sizeof(e)});
    }
  }
  w.put(s.substr(run));
  w.put('"');
}

// For short strings from the kernel (comm, module) that are usually, but not
// surely, UTF-8: a process may name itself with any bytes.
void append_json_text(LineWriter& w, std::string_view s) {
  append_json_string(w, s, !is_valid_utf8(s));
}

// The field writers below are small and `inline`, a hint GCC at -O2 needs to
// inline them: a field's name then becomes a few immediate stores rather than
// a memcpy call, and each field costs one LineWriter bounds check.

// `,"name":` — every key but the first. Names are short literals.
char* write_key(char* p, std::string_view name) {
  return write_chars(write_chars(write_chars(p, ",\""), name), "\":");
}
constexpr size_t key_chars(std::string_view name) { return name.size() + 4; }

inline void append_key(LineWriter& w, std::string_view name) {
  w.commit(write_key(w.reserve(key_chars(name)), name));
}

template <std::integral T>
inline void append_field(LineWriter& w, std::string_view name, T value) {
  char* p = w.reserve(key_chars(name) + kMaxIntChars);
  w.commit(write_int(write_key(p, name), value));
}

// `,"name":"value"` where `value` is short and needs no escaping (fixed
// names, addresses).
inline void append_quoted_field(LineWriter& w, std::string_view name, std::string_view value) {
  char* p = w.reserve(key_chars(name) + value.size() + 2);
  p = write_key(p, name);
  *p++ = '"';
  p = write_chars(p, value);
  *p++ = '"';
  w.commit(p);
}

inline void append_endpoint_field(LineWriter& w, std::string_view name, AddrFamily family,
                                  const IpText& ip, uint16_t port) {
  char* p = w.reserve(key_chars(name) + kMaxEndpointChars + 2);
  p = write_key(p, name);
  *p++ = '"';
  p = write_endpoint(p, family, ip, port);
  *p++ = '"';
  w.commit(p);
}

inline void append_bool(LineWriter& w, std::string_view name, bool v) {
  append_key(w, name);
  w.put(v ? "true" : "false");
}

inline void append_text_field(LineWriter& w, std::string_view name, std::string_view v) {
  append_key(w, name);
  append_json_text(w, v);
}

// The "http" object of a message event (docs/outputs.md "HTTP").
void append_http_message(LineWriter& w, const http::Message& m) {
  w.put(",\"http\":{\"version\":");
  append_json_text(w, http::version_name(m.version));
  append_quoted_field(w, "kind", m.kind == http::Kind::kRequest ? "request" : "response");
  if (m.kind == http::Kind::kRequest) {
    append_text_field(w, "method", m.method);
    append_text_field(w, "path", m.path);
    append_text_field(w, "authority", m.authority);
  } else {
    append_field(w, "status", m.status);
    append_text_field(w, "reason", m.reason);
  }
  append_field(w, "stream_id", m.stream_id);
  append_bool(w, "headers_unknown", m.headers_unknown);
  append_key(w, "headers");
  w.put('[');
  bool first = true;
  for (const auto& [n, v] : m.headers) {
    if (!first) w.put(',');
    first = false;
    w.put('[');
    append_json_text(w, n);
    w.put(',');
    append_json_text(w, v);
    w.put(']');
  }
  w.put(']');
  append_field(w, "header_bytes", m.header_bytes);
  append_field(w, "body_bytes", m.body_bytes);
  append_text_field(w, "body_encoding", m.header("content-encoding"));
  append_quoted_field(w, "body_decoded", body_state_name(m));
  if (m.body_bytes > 0) {
    const std::string_view body = display_body(m);
    if (is_valid_utf8(body)) {
      append_key(w, "body");
      append_json_string(w, body, false);
    } else {
      append_key(w, "body_b64");
      w.put('"');
      append_base64(w.string(), body);
      w.put('"');
    }
  }
  append_bool(w, "truncated", m.body_cut || m.shown.status == http::DecodedBody::Status::kCut);
  append_bool(w, "incomplete", m.incomplete);
  append_bool(w, "upgrade", m.upgrade);
  w.put('}');
}

// The "http" object of an exchange event.
void append_http_exchange(LineWriter& w, const http::Exchange& x) {
  const http::Message* rq = x.request;
  const http::Message* rs = x.response;
  const http::Message* any = rq ? rq : rs;
  w.put(",\"http\":{\"version\":");
  append_json_text(w, http::version_name(any->version));
  append_text_field(w, "method", rq ? std::string_view(rq->method) : std::string_view());
  append_text_field(w, "authority", rq ? std::string_view(rq->authority) : std::string_view());
  append_text_field(w, "path", rq ? std::string_view(rq->path) : std::string_view());
  append_field(w, "status", rs ? rs->status : 0);
  append_field(w, "stream_id", any->stream_id);
  append_bool(w, "request_seen", rq != nullptr);
  append_bool(w, "response_seen", rs != nullptr);
  append_bool(w, "incomplete", (rq && rq->incomplete) || (rs && rs->incomplete));
  append_field(w, "request_header_bytes", rq ? rq->header_bytes : 0);
  append_field(w, "request_body_bytes", rq ? rq->body_bytes : 0);
  append_field(w, "response_header_bytes", rs ? rs->header_bytes : 0);
  append_field(w, "response_body_bytes", rs ? rs->body_bytes : 0);
  append_field(w, "wait_ns", x.wait_ns);
  append_field(w, "total_ns", x.total_ns);
  w.put('}');
}

}  // namespace

void JsonEncoder::encode(const Event& ev, std::string& out) {
  const ShownPayload shown = shown_payload(ev, opts_);
  const AddrFamily family = addr_family(ev);
  const IpText src_ip(family, ev.saddr);
  const IpText dst_ip(family, ev.daddr);
  LineWriter w(out);

  w.put("{\"time\":\"");
  time_.append(w, ev.wall_ns);
  w.put('"');
  append_field(w, "ts_ns", ev.wall_ns);
  append_field(w, "pid", ev.pid);
  append_field(w, "tid", ev.tid);
  append_field(w, "uid", ev.uid);
  append_key(w, "comm");
  append_json_text(w, ev.comm);
  append_field(w, "cgroup_id", ev.cgroup_id);
  append_key(w, "module");
  append_json_text(w, ev.module());
  append_quoted_field(w, "source", source_name(ev.source));
  append_quoted_field(w, "direction", direction_name(ev.direction));
  append_field(w, "fd", ev.fd);
  append_quoted_field(w, "family", family_name(family));

  const bool known = family != AddrFamily::kUnknown;
  append_endpoint_field(w, "src", family, src_ip, ev.sport);
  append_endpoint_field(w, "dst", family, dst_ip, ev.dport);
  append_quoted_field(w, "src_ip", src_ip.view());
  append_field(w, "src_port", known ? ev.sport : uint16_t{0});
  append_quoted_field(w, "dst_ip", dst_ip.view());
  append_field(w, "dst_port", known ? ev.dport : uint16_t{0});

  append_field(w, "conn_id", ev.conn_id);
  if (ev.http || ev.exchange) {
    append_quoted_field(w, "type", payload_type(ev));
    if (ev.http) append_http_message(w, *ev.http);
    else append_http_exchange(w, *ev.exchange);
    w.put("}\n");
    w.finish();
    return;
  }
  append_field(w, "seq", ev.seq);
  append_field(w, "len", shown.bytes.size());
  append_field(w, "call_len", ev.call_len);
  append_field(w, "call_off", ev.call_off);
  append_key(w, "truncated");
  w.put(shown.truncated ? "true" : "false");
  append_quoted_field(w, "type", payload_type(ev));
  if (shown.utf8) {
    append_key(w, "payload");
    append_json_string(w, as_chars(shown.bytes), false);
  } else {
    append_key(w, "payload_b64");
    w.put('"');
    append_base64(w.string(), shown.bytes);
    w.put('"');
  }
  w.put("}\n");
  w.finish();
}

void JsonEncoder::encode_log(uint64_t wall_ns, std::string_view message, std::string& out) {
  LineWriter w(out);
  w.put("{\"time\":\"");
  time_.append(w, wall_ns);
  w.put('"');
  append_field(w, "ts_ns", wall_ns);
  append_quoted_field(w, "module", "clearcap");
  append_key(w, "log");
  append_json_text(w, message);
  w.put("}\n");
  w.finish();
}

}  // namespace clearcap
