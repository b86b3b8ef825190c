#include "sinks/json_encoder.h"

#include <array>
#include <string_view>

#include "sinks/format_util.h"

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

// Appends `s` as a quoted JSON string. With `escape_high`, bytes >= 0x80 are
// written as \u00XX (their Latin-1 code point): used for strings that are not
// valid UTF-8, so that the line stays valid JSON and every byte is recoverable.
void append_json_string(std::string& out, std::string_view s, bool escape_high) {
  out += '"';
  size_t run = 0;  // start of the bytes not yet copied
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<uint8_t>(s[i]);
    char esc = kEscape[c];
    if (esc == 0 && escape_high && c >= 0x80) esc = 'u';
    if (esc == 0) continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    if (esc == 'u') {
      const char u[] = {'\\', 'u', '0', '0', kHexDigits[c >> 4], kHexDigits[c & 0xf]};
      out.append(u, sizeof(u));
    } else {
      const char e[] = {'\\', esc};
      out.append(e, sizeof(e));
    }
  }
  out.append(s.data() + run, s.size() - run);
  out += '"';
}

// For short strings from the kernel (comm, module) that are usually, but not
// surely, UTF-8: a process may name itself with any bytes.
void append_json_text(std::string& out, std::string_view s) {
  append_json_string(out, s, !is_valid_utf8(s));
}

// Standard base64 (RFC 4648 §4) with padding.
void append_base64(std::string& out, std::span<const uint8_t> in) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  const size_t start = out.size();
  out.resize(start + (in.size() + 2) / 3 * 4);
  char* p = out.data() + start;
  size_t i = 0;
  for (; i + 3 <= in.size(); i += 3) {
    const uint32_t v = uint32_t{in[i]} << 16 | uint32_t{in[i + 1]} << 8 | in[i + 2];
    *p++ = kAlphabet[v >> 18];
    *p++ = kAlphabet[(v >> 12) & 0x3f];
    *p++ = kAlphabet[(v >> 6) & 0x3f];
    *p++ = kAlphabet[v & 0x3f];
  }
  const size_t rest = in.size() - i;
  if (rest == 0) return;
  const uint32_t v = uint32_t{in[i]} << 16 | (rest == 2 ? uint32_t{in[i + 1]} << 8 : 0);
  *p++ = kAlphabet[v >> 18];
  *p++ = kAlphabet[(v >> 12) & 0x3f];
  *p++ = rest == 2 ? kAlphabet[(v >> 6) & 0x3f] : '=';
  *p = '=';
}

// Only the start of a call can begin an HTTP/1 message; later chunks are data
// even if their bytes happen to look like one.
std::string_view payload_type(const Event& ev) {
  static constexpr std::string_view kMethods[] = {"GET",  "POST",    "PUT",     "DELETE", "HEAD",
                                                  "OPTIONS", "PATCH", "CONNECT", "TRACE"};
  if (ev.call_off != 0) return "data";
  const std::string_view p = as_chars(ev.payload);
  if (p.starts_with("HTTP/1.")) return "http1_response";
  for (const std::string_view m : kMethods) {
    if (p.size() > m.size() && p.starts_with(m) && p[m.size()] == ' ') return "http1_request";
  }
  return "data";
}

// `,"name":` — every key but the first.
void append_key(std::string& out, std::string_view name) {
  out += ",\"";
  out += name;
  out += "\":";
}

template <std::integral T>
void append_field(std::string& out, std::string_view name, T value) {
  append_key(out, name);
  append_int(out, value);
}

// `,"name":"value"` where `fill()` appends a value that needs no escaping
// (fixed names, addresses).
template <class Fill>
void append_quoted_field(std::string& out, std::string_view name, Fill fill) {
  append_key(out, name);
  out += '"';
  fill();
  out += '"';
}

void append_quoted_field(std::string& out, std::string_view name, std::string_view value) {
  append_quoted_field(out, name, [&] { out += value; });
}

}  // namespace

void JsonEncoder::encode(const Event& ev, std::string& out) {
  const ShownPayload shown = shown_payload(ev, opts_);
  const AddrFamily family = addr_family(ev);

  out += "{\"time\":\"";
  append_rfc3339(out, ev.wall_ns);
  out += '"';
  append_field(out, "ts_ns", ev.wall_ns);
  append_field(out, "pid", ev.pid);
  append_field(out, "tid", ev.tid);
  append_field(out, "uid", ev.uid);
  append_key(out, "comm");
  append_json_text(out, ev.comm);
  append_field(out, "cgroup_id", ev.cgroup_id);
  append_key(out, "module");
  append_json_text(out, ev.module);
  append_quoted_field(out, "source", source_name(ev.source));
  append_quoted_field(out, "direction", direction_name(ev.direction));
  append_field(out, "fd", ev.fd);
  append_quoted_field(out, "family", family_name(family));

  const bool known = family != AddrFamily::kUnknown;
  append_quoted_field(out, "src", [&] { append_endpoint(out, family, ev.saddr, ev.sport); });
  append_quoted_field(out, "dst", [&] { append_endpoint(out, family, ev.daddr, ev.dport); });
  append_quoted_field(out, "src_ip", [&] { append_ip(out, family, ev.saddr); });
  append_field(out, "src_port", known ? ev.sport : uint16_t{0});
  append_quoted_field(out, "dst_ip", [&] { append_ip(out, family, ev.daddr); });
  append_field(out, "dst_port", known ? ev.dport : uint16_t{0});

  append_field(out, "conn_id", ev.conn_id);
  append_field(out, "seq", ev.seq);
  append_field(out, "len", shown.bytes.size());
  append_field(out, "call_len", ev.call_len);
  append_field(out, "call_off", ev.call_off);
  append_key(out, "truncated");
  out += shown.truncated ? "true" : "false";
  append_quoted_field(out, "type", payload_type(ev));
  if (shown.utf8) {
    append_key(out, "payload");
    append_json_string(out, as_chars(shown.bytes), false);
  } else {
    append_quoted_field(out, "payload_b64", [&] { append_base64(out, shown.bytes); });
  }
  out += "}\n";
}

}  // namespace clearcap
