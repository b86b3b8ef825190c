#include "sinks/encoders/text_encoder.h"

#include <algorithm>

#include "sinks/encoders/format_util.h"
#include "sinks/encoders/http_render.h"

namespace clearcap {

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
    render_http_event(ev, opts_.hex, out);
    if (ev.exchange) out += '\n';
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
