#include "sinks/encoders/format_util.h"

#include <sys/socket.h>

#include <bit>
#include <chrono>
#include <cstring>

#include <fmt/format.h>
#include <simdjson.h>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

namespace clearcap {

void LineWriter::put_long(std::string_view s) {
  flush();
  if (s.size() <= kBufferSize) {
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  } else {
    out_.append(s);
  }
}

char* write_uint(char* p, uint64_t value) { return std::to_chars(p, p + kMaxIntChars, value).ptr; }
char* write_sint(char* p, int64_t value) { return std::to_chars(p, p + kMaxIntChars, value).ptr; }

void TimeFormatter::append(LineWriter& w, uint64_t wall_ns) {
  const uint64_t second = wall_ns / 1'000'000'000;
  if (second != second_) {
    using namespace std::chrono;
    const sys_seconds secs{seconds{second}};
    const auto day = floor<days>(secs);
    const year_month_day ymd{day};
    const hh_mm_ss hms{secs - day};
    // Always kPrefixLen bytes: a uint64_t of nanoseconds ends in year 2554.
    fmt::format_to_n(prefix_, kPrefixLen, "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.",
                     static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                     static_cast<unsigned>(ymd.day()), hms.hours().count(),
                     hms.minutes().count(), hms.seconds().count());
    second_ = second;
  }
  char* p = w.reserve(kPrefixLen + 10);
  std::memcpy(p, prefix_, kPrefixLen);
  p += kPrefixLen;
  uint64_t ns = wall_ns % 1'000'000'000;
  for (int i = 8; i >= 0; --i) {
    p[i] = static_cast<char>('0' + ns % 10);
    ns /= 10;
  }
  p[9] = 'Z';
  w.commit(p + 10);
}

AddrFamily addr_family(const Event& ev) {
  if (!ev.has_tuple() || ev.saddr == nullptr || ev.daddr == nullptr) return AddrFamily::kUnknown;
  switch (ev.family) {
    case AF_INET: return AddrFamily::kIpv4;
    case AF_INET6: return AddrFamily::kIpv6;
  }
  return AddrFamily::kUnknown;
}

std::string_view family_name(AddrFamily family) {
  switch (family) {
    case AddrFamily::kIpv4: return "ipv4";
    case AddrFamily::kIpv6: return "ipv6";
    case AddrFamily::kUnknown: break;
  }
  return "unknown";
}

namespace {

// The address formatters below produce exactly glibc's inet_ntop text, which
// formats with sprintf: ~1,700 instructions for an IPv4 address and several
// times that for IPv6, against a few dozen here.

char* format_ipv4(char* p, const uint8_t* addr) {
  for (int i = 0; i < 4; ++i) {
    if (i != 0) *p++ = '.';
    p = std::to_chars(p, p + 3, addr[i]).ptr;
  }
  return p;
}

// RFC 5952 text: lowercase hex groups without leading zeros, the first
// longest run of two or more zero groups written as "::". Like glibc (and
// BIND, where its code comes from), ::ffff:a.b.c.d (IPv4-mapped) and ::a.b.c.d
// (the deprecated IPv4-compatible form) end in a dotted quad.
char* format_ipv6(char* p, const uint8_t* addr) {
  uint16_t words[8];
  for (int i = 0; i < 8; ++i) words[i] = static_cast<uint16_t>(addr[2 * i] << 8 | addr[2 * i + 1]);

  int run_begin = 0, run_end = 0;  // the zero run written as "::", empty if none
  for (int i = 0; i < 8;) {
    if (words[i] != 0) {
      ++i;
      continue;
    }
    int j = i;
    while (j < 8 && words[j] == 0) ++j;
    if (j - i > run_end - run_begin) run_begin = i, run_end = j;
    i = j;
  }
  if (run_end - run_begin < 2) run_begin = run_end = 0;

  for (int i = 0; i < 8; ++i) {
    if (i >= run_begin && i < run_end) {
      if (i == run_begin) *p++ = ':';
      continue;
    }
    if (i != 0) *p++ = ':';
    if (i == 6 && run_begin == 0 && (run_end == 6 || (run_end == 5 && words[5] == 0xffff))) {
      return format_ipv4(p, addr + 12);
    }
    p = std::to_chars(p, p + 4, words[i], 16).ptr;
  }
  if (run_end == 8 && run_begin < run_end) *p++ = ':';
  return p;
}

}  // namespace

IpText::IpText(AddrFamily family, const uint8_t* addr) {
  switch (family) {
    case AddrFamily::kIpv4: len_ = static_cast<size_t>(format_ipv4(buf_, addr) - buf_); break;
    case AddrFamily::kIpv6: len_ = static_cast<size_t>(format_ipv6(buf_, addr) - buf_); break;
    case AddrFamily::kUnknown: break;
  }
}

char* write_endpoint(char* p, AddrFamily family, const IpText& ip, uint16_t port) {
  if (family == AddrFamily::kUnknown) return p;
  const bool v6 = family == AddrFamily::kIpv6;
  if (v6) *p++ = '[';
  p = write_chars(p, ip.view());
  p = write_chars(p, v6 ? "]:" : ":");
  return write_int(p, port);
}

// Standard base64 (RFC 4648 §4) with padding.
namespace {

constexpr char kBase64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

// The two characters of every 12-bit group, first one in the low byte: one
// lookup and one 16-bit store where the plain loop does two of each. JSON
// of binary payloads is mostly this (perf: 43 % of the processor's time at
// 64 KiB HTTP/2 responses before it).
struct Base64Pairs {
  uint16_t v[4096];
};

constexpr Base64Pairs make_base64_pairs() {
  Base64Pairs t{};
  for (unsigned i = 0; i < 4096; ++i)
    t.v[i] = static_cast<uint16_t>(static_cast<uint8_t>(kBase64[i >> 6]) |
                                   static_cast<uint8_t>(kBase64[i & 63]) << 8);
  return t;
}

constexpr Base64Pairs kBase64Pairs = make_base64_pairs();

#if defined(__x86_64__)
// 12 bytes in, 16 characters out per step, with SSSE3 (pshufb): Wojciech
// Mula's method ("Base64 encoding with SIMD instructions", 2016): spread
// each 3-byte group over a 32-bit lane, cut out the four 6-bit indices with
// two multiplies, then turn indices into characters by adding an offset
// chosen per range (A-Z, a-z, 0-9, +, /) with one table lookup. Binary
// payloads in JSON (`payload_b64`, `body_b64`) were a third of the
// processor's time at 64 KiB responses; this is ~2x the pair table below
// (bench/bench_pipeline BM_JsonEncoder_Binary). Reads 16 bytes per step:
// returns how many input bytes it encoded (a multiple of 12).
__attribute__((target("ssse3"))) size_t base64_ssse3(const uint8_t* s, size_t n, char* p) {
  const __m128i spread = _mm_set_epi8(10, 11, 9, 10, 7, 8, 6, 7, 4, 5, 3, 4, 1, 2, 0, 1);
  const __m128i shift_lut = _mm_setr_epi8('a' - 26, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52, '0' - 52,
                                          '0' - 52, '0' - 52, '0' - 52, '0' - 52, '+' - 62, '/' - 63, 'A', 0, 0);
  size_t i = 0;
  for (; i + 16 <= n; i += 12, p += 16) {
    __m128i in = _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(s + i)), spread);
    const __m128i t0 = _mm_and_si128(in, _mm_set1_epi32(0x0fc0fc00));
    const __m128i t1 = _mm_mulhi_epu16(t0, _mm_set1_epi32(0x04000040));
    const __m128i t2 = _mm_and_si128(in, _mm_set1_epi32(0x003f03f0));
    const __m128i t3 = _mm_mullo_epi16(t2, _mm_set1_epi32(0x01000010));
    const __m128i idx = _mm_or_si128(t1, t3);
    // Range of each index: 0 for 0..25 (A-Z) via the 13 below, 1 for
    // 26..51, 2..12 for 52..62, 12 for 63.
    __m128i range = _mm_subs_epu8(idx, _mm_set1_epi8(51));
    const __m128i upper = _mm_cmpgt_epi8(_mm_set1_epi8(26), idx);
    range = _mm_or_si128(range, _mm_and_si128(upper, _mm_set1_epi8(13)));
    const __m128i chars = _mm_add_epi8(_mm_shuffle_epi8(shift_lut, range), idx);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(p), chars);
  }
  return i;
}

const bool kHaveSsse3 = __builtin_cpu_supports("ssse3");
#endif

}  // namespace

void append_base64(std::string& out, std::span<const uint8_t> in) {
  const size_t start = out.size();
  out.resize(start + (in.size() + 2) / 3 * 4);
  char* p = out.data() + start;
  const uint8_t* s = in.data();
  const size_t n = in.size();
  size_t i = 0;
#if defined(__x86_64__)
  if (kHaveSsse3 && n >= 16) {
    i = base64_ssse3(s, n, p);
    p += i / 3 * 4;
  }
#endif
  if constexpr (std::endian::native == std::endian::little) {
    // 6 bytes in, 8 characters out, from one 8-byte load (its last 2 bytes
    // are read, not used: hence i + 8 <= n).
    for (; i + 8 <= n; i += 6) {
      uint64_t w;
      std::memcpy(&w, s + i, 8);
      w = __builtin_bswap64(w);  // the first byte in the top bits
      const uint64_t o = uint64_t{kBase64Pairs.v[(w >> 52) & 0xfff]} |
                         uint64_t{kBase64Pairs.v[(w >> 40) & 0xfff]} << 16 |
                         uint64_t{kBase64Pairs.v[(w >> 28) & 0xfff]} << 32 |
                         uint64_t{kBase64Pairs.v[(w >> 16) & 0xfff]} << 48;
      std::memcpy(p, &o, 8);
      p += 8;
    }
  }
  for (; i + 3 <= n; i += 3) {
    const uint32_t v = uint32_t{s[i]} << 16 | uint32_t{s[i + 1]} << 8 | s[i + 2];
    *p++ = kBase64[v >> 18];
    *p++ = kBase64[(v >> 12) & 0x3f];
    *p++ = kBase64[(v >> 6) & 0x3f];
    *p++ = kBase64[v & 0x3f];
  }
  const size_t rest = n - i;
  if (rest == 0) return;
  const uint32_t v = uint32_t{s[i]} << 16 | (rest == 2 ? uint32_t{s[i + 1]} << 8 : 0);
  *p++ = kBase64[v >> 18];
  *p++ = kBase64[(v >> 12) & 0x3f];
  *p++ = rest == 2 ? kBase64[(v >> 6) & 0x3f] : '=';
  *p = '=';
}

namespace {

// Binary payloads fail within their first bytes, but simdjson checks the
// whole input before it answers: long inputs are checked on a prefix of
// whole characters first (it ends before a byte that starts a character, so
// it is valid whenever the input is). Out of line: short inputs never pay
// for it.
constexpr size_t kUtf8Prefix = 64;

__attribute__((noinline)) bool prefix_valid_utf8(std::string_view s) {
  size_t cut = kUtf8Prefix;
  while (cut > kUtf8Prefix - 4 && (static_cast<uint8_t>(s[cut]) & 0xC0) == 0x80) --cut;
  return simdjson::validate_utf8(s.data(), cut);
}

}  // namespace

bool is_valid_utf8(std::string_view s) {
  // Short ASCII strings (comm, module: two per JSON line) are checked here:
  // simdjson's implementation dispatch costs more than the check. Longer
  // strings go straight to simdjson, which is far faster on them.
  constexpr size_t kShort = 64;
  if (s.size() <= kShort && find_byte(
                                s, 0, [](Bytes16 v) { return v >= 0x80; },
                                [](uint8_t c) { return c >= 0x80; }) == s.size()) {
    return true;
  }
  if (s.size() > 4 * kUtf8Prefix && !prefix_valid_utf8(s)) return false;
  return simdjson::validate_utf8(s.data(), s.size());
}

namespace {

// Length of `bytes` without a trailing incomplete UTF-8 character, or
// bytes.size() when the last character is complete (or not UTF-8 at all).
size_t without_partial_char(std::span<const uint8_t> bytes) {
  size_t n = bytes.size();
  size_t continuation = 0;
  while (continuation < 3 && n > 0 && (bytes[n - 1] & 0xC0) == 0x80) {
    --n;
    ++continuation;
  }
  if (n == 0) return bytes.size();
  const uint8_t lead = bytes[n - 1];
  const size_t char_len = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
  return char_len > continuation + 1 ? n - 1 : bytes.size();
}

}  // namespace

ShownPayload shown_payload(const Event& ev, const FormatOptions& opts) {
  ShownPayload shown;
  shown.bytes = ev.payload;
  if (opts.truncate != 0 && ev.payload.size() > opts.truncate) {
    shown.bytes = ev.payload.first(opts.truncate);
    shown.truncated = true;
  }
  shown.utf8 = is_valid_utf8(as_chars(shown.bytes));
  if (!shown.utf8 && shown.truncated) {
    const size_t n = without_partial_char(shown.bytes);
    if (n < shown.bytes.size() && is_valid_utf8(as_chars(shown.bytes.first(n)))) {
      shown.bytes = shown.bytes.first(n);
      shown.utf8 = true;
    }
  }
  return shown;
}

namespace {
constexpr size_t kHexBytesPerLine = 16;
}  // namespace

// `hexdump -C` layout:
// 00000000  47 45 54 20 2f 20 48 54  54 50 2f 31 2e 31 0d 0a  |GET / HTTP/1.1..|
namespace {

bool is_ascii_control(uint8_t c) { return c < 0x20 || c == 0x7f; }

// Index of the first byte at or after `i` that can make text unprintable
// (a control, or 0xC2, the lead byte of the C1 controls), or s.size().
size_t next_suspect(std::string_view s, size_t i) {
  return find_byte(
      s, i, [](Bytes16 v) { return (v < 0x20) | (v == 0x7f) | (v == 0xC2); },
      [](uint8_t c) { return is_ascii_control(c) || c == 0xC2; });
}

}  // namespace

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

void append_hex_dump(LineWriter& w, std::span<const uint8_t> bytes) {
  for (size_t off = 0; off < bytes.size(); off += kHexBytesPerLine) {
    const auto row = bytes.subspan(off, std::min(kHexBytesPerLine, bytes.size() - off));
    char* const line = w.reserve(79);  // 8 + 2 + 16*3 + 1 + 2 + 16 + 2
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
    w.commit(p);
  }
}


// Only the start of a call can begin an HTTP/1 message; later chunks are data
// even if their bytes happen to look like one.
std::string_view payload_type(const Event& ev) {
  switch (ev.kind) {
    case PayloadKind::kUnset: break;
    case PayloadKind::kData: return "data";
    case PayloadKind::kHttp1Request: return "http1_request";
    case PayloadKind::kHttp2Request: return "http2_request";
    case PayloadKind::kHttp1Response: return "http1_response";
    case PayloadKind::kHttp2Response: return "http2_response";
    case PayloadKind::kWebSocket: return "websocket";
    case PayloadKind::kHttpExchange: return "http_exchange";
  }
  // No protocol stage ran (capture-file export): the start of the chunk.
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

}  // namespace clearcap
