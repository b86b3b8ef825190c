#include "sinks/encoders/text_encoder.h"

#include <algorithm>

#include "sinks/encoders/format_util.h"
#include "sinks/encoders/http_render.h"

namespace clearcap {
namespace {

bool is_ascii_control(uint8_t c) { return c < 0x20 || c == 0x7f; }

// Index of the first byte at or after `i` that can make text unprintable
// (a control, or 0xC2, the lead byte of the C1 controls), or s.size().
size_t next_suspect(std::string_view s, size_t i) {
  return find_byte(
      s, i, [](Bytes16 v) { return (v < 0x20) | (v == 0x7f) | (v == 0xC2); },
      [](uint8_t c) { return is_ascii_control(c) || c == 0xC2; });
}

// Printable means safe to write to a terminal as is: valid UTF-8 without
// control characters (other than line breaks and tabs) that could move the
// cursor or start an escape sequence. C1 controls (U+0080..U+009F, encoded as
// C2 80..C2 9F) count too: some terminals treat U+009B as CSI.
bool is_printable_text(std::span<const uint8_t> bytes, bool utf8) {
  if (!utf8) return false;
  const std::string_view s = as_chars(bytes);
  for (size_t i = next_suspect(s, 0); i < s.size(); i = next_suspect(s, i + 1)) {
    const uint8_t c = bytes[i];
    if (c == 0xC2) {
      if (i + 1 < bytes.size() && bytes[i + 1] < 0xA0) return false;
    } else if (c != '\n' && c != '\r' && c != '\t') {
      return false;
    }
  }
  return true;
}

// comm is chosen by the traced process: never let it reach a terminal raw.
void append_sanitized(LineWriter& w, std::string_view s) {
  for (const char ch : s) w.put(is_ascii_control(static_cast<uint8_t>(ch)) ? '?' : ch);
}

}  // namespace

void TextEncoder::encode(const Event& ev, std::string& out) {
  const ShownPayload shown = shown_payload(ev, opts_);
  const AddrFamily family = addr_family(ev);
  LineWriter w(out);

  time_.append(w, ev.wall_ns);
  w.put(' ');
  append_sanitized(w, ev.comm);
  append_int(w, " pid=", ev.pid);
  append_int(w, " tid=", ev.tid);
  append_int(w, " uid=", ev.uid);
  w.put(' ');
  w.put(source_name(ev.source));
  w.put(' ');
  w.put(direction_name(ev.direction));
  append_int(w, " fd=", ev.fd);
  if (family == AddrFamily::kUnknown) {
    w.put(" (no address)");
  } else {
    char* p = w.reserve(2 * kMaxEndpointChars + 5);
    *p++ = ' ';
    p = write_endpoint(p, family, IpText(family, ev.saddr), ev.sport);
    p = write_chars(p, " -> ");
    w.commit(write_endpoint(p, family, IpText(family, ev.daddr), ev.dport));
  }
  append_int(w, " conn=", ev.conn_id);
  if (ev.exchange || ev.http) {
    // Protocol-layer events: an access-log-like line per exchange, a
    // readable request/response per message.
    w.put(' ');
    w.put(payload_type(ev));
    w.put(ev.exchange ? ' ' : '\n');
    w.finish();
    if (ev.exchange) {
      render_exchange(*ev.exchange, out);
      out += '\n';
    } else {
      render_message(*ev.http, opts_.hex, out);
    }
    return;
  }
  append_int(w, " seq=", ev.seq);
  append_int(w, " len=", shown.bytes.size());
  if (ev.call_len > ev.payload.size()) {
    append_int(w, " chunk=", ev.call_off);
    append_int(w, "/", ev.call_len);
  }
  if (shown.truncated) {
    append_int(w, " (truncated from ", ev.payload.size());
    w.put(')');
  }
  if (ev.consumed) {
    // Its bytes are shown as the HTTP message(s) they belong to.
    w.put(' ');
    w.put(payload_type(ev));
    w.put(" (shown as a message)\n");
    w.finish();
    return;
  }
  w.put('\n');

  if (!opts_.hex && is_printable_text(shown.bytes, shown.utf8)) {
    w.put(as_chars(shown.bytes));
    if (!shown.bytes.empty() && shown.bytes.back() != '\n') w.put('\n');
  } else {
    append_hex_dump(w, shown.bytes);
  }
  w.put('\n');
  w.finish();
}

}  // namespace clearcap
