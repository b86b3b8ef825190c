#include "sinks/text_encoder.h"

#include <algorithm>

#include "sinks/format_util.h"

namespace clearcap {
namespace {

constexpr size_t kHexBytesPerLine = 16;

bool is_ascii_control(uint8_t c) { return c < 0x20 || c == 0x7f; }

// Printable means safe to write to a terminal as is: valid UTF-8 without
// control characters (other than line breaks and tabs) that could move the
// cursor or start an escape sequence. C1 controls (U+0080..U+009F, encoded as
// C2 80..C2 9F) count too: some terminals treat U+009B as CSI.
bool is_printable_text(std::span<const uint8_t> bytes, bool utf8) {
  if (!utf8) return false;
  for (size_t i = 0; i < bytes.size(); ++i) {
    const uint8_t c = bytes[i];
    if (is_ascii_control(c) && c != '\n' && c != '\r' && c != '\t') return false;
    if (c == 0xC2 && i + 1 < bytes.size() && bytes[i + 1] < 0xA0) return false;
  }
  return true;
}

// comm is chosen by the traced process: never let it reach a terminal raw.
void append_sanitized(std::string& out, std::string_view s) {
  for (const char ch : s) out += is_ascii_control(static_cast<uint8_t>(ch)) ? '?' : ch;
}

// `hexdump -C` layout:
// 00000000  47 45 54 20 2f 20 48 54  54 50 2f 31 2e 31 0d 0a  |GET / HTTP/1.1..|
void append_hex_dump(std::string& out, std::span<const uint8_t> bytes) {
  for (size_t off = 0; off < bytes.size(); off += kHexBytesPerLine) {
    const auto row = bytes.subspan(off, std::min(kHexBytesPerLine, bytes.size() - off));
    char line[80];  // 8 + 2 + 16*3 + 1 + 2 + 16 + 2 = 79
    char* p = line;
    for (int shift = 28; shift >= 0; shift -= 4) *p++ = kHexDigits[(off >> shift) & 0xf];
    *p++ = ' ';
    *p++ = ' ';
    for (size_t i = 0; i < kHexBytesPerLine; ++i) {
      if (i == kHexBytesPerLine / 2) *p++ = ' ';
      if (i < row.size()) {
        *p++ = kHexDigits[row[i] >> 4];
        *p++ = kHexDigits[row[i] & 0xf];
      } else {
        *p++ = ' ';
        *p++ = ' ';
      }
      *p++ = ' ';
    }
    *p++ = ' ';
    *p++ = '|';
    for (const uint8_t c : row) *p++ = c >= 0x20 && c < 0x7f ? static_cast<char>(c) : '.';
    *p++ = '|';
    *p++ = '\n';
    out.append(line, p);
  }
}

}  // namespace

void TextEncoder::encode(const Event& ev, std::string& out) {
  const ShownPayload shown = shown_payload(ev, opts_);
  const AddrFamily family = addr_family(ev);

  append_rfc3339(out, ev.wall_ns);
  out += ' ';
  append_sanitized(out, ev.comm);
  out += " pid=";
  append_int(out, ev.pid);
  out += " tid=";
  append_int(out, ev.tid);
  out += " uid=";
  append_int(out, ev.uid);
  out += ' ';
  out += source_name(ev.source);
  out += ' ';
  out += direction_name(ev.direction);
  out += " fd=";
  append_int(out, ev.fd);
  if (family == AddrFamily::kUnknown) {
    out += " (no address)";
  } else {
    out += ' ';
    append_endpoint(out, family, ev.saddr, ev.sport);
    out += " -> ";
    append_endpoint(out, family, ev.daddr, ev.dport);
  }
  out += " conn=";
  append_int(out, ev.conn_id);
  out += " seq=";
  append_int(out, ev.seq);
  out += " len=";
  append_int(out, shown.bytes.size());
  if (ev.call_len > ev.payload.size()) {
    out += " chunk=";
    append_int(out, ev.call_off);
    out += '/';
    append_int(out, ev.call_len);
  }
  if (shown.truncated) {
    out += " (truncated from ";
    append_int(out, ev.payload.size());
    out += ')';
  }
  out += '\n';

  if (!opts_.hex && is_printable_text(shown.bytes, shown.utf8)) {
    out += as_chars(shown.bytes);
    if (!shown.bytes.empty() && shown.bytes.back() != '\n') out += '\n';
  } else {
    append_hex_dump(out, shown.bytes);
  }
  out += '\n';
}

}  // namespace clearcap
