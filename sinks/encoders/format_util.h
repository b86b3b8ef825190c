// Formatting pieces shared by the encoders: an output writer, wall-clock
// time, addresses, numbers and the payload window an encoder shows. Nothing
// here allocates once the caller's output string has grown to its working
// size.
#pragma once

#include <algorithm>
#include <bit>
#include <cassert>
#include <charconv>
#include <concepts>
#include <cstdint>
#include <cstring>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>

#include "core/event.h"
#include "sinks/event_sink.h"

namespace clearcap {

inline constexpr char kHexDigits[] = "0123456789abcdef";

// Appends one encoded event to a std::string through a stack buffer.
// An encoder emits ~60 small pieces per event; std::string::append costs an
// out-of-line call and a capacity check per piece, which was a large part of
// the per-event time. Here a piece is a bounds check and a memcpy (a few
// stores for a literal), and the string sees one append per buffer-full.
// Call finish() at the end: nothing reaches the string before.
class LineWriter {
 public:
  // Bounds what reserve() can promise; a usual JSON header fits whole.
  static constexpr size_t kBufferSize = 1024;

  explicit LineWriter(std::string& out) : out_(out) {}
  LineWriter(const LineWriter&) = delete;
  LineWriter& operator=(const LineWriter&) = delete;

  void put(char c) {
    if (p_ == std::end(buf_)) flush();
    *p_++ = c;
  }
  void put(std::string_view s) {
    if (s.size() > room()) return put_long(s);
    std::memcpy(p_, s.data(), s.size());
    p_ += s.size();
  }
  // At least `n` (<= kBufferSize) writable bytes at the returned pointer;
  // pass the end of what was written to commit().
  char* reserve(size_t n) {
    assert(n <= kBufferSize);
    if (n > room()) flush();
    return p_;
  }
  void commit(char* end) { p_ = end; }
  // The string with everything put so far, for pieces written to it in bulk.
  std::string& string() {
    flush();
    return out_;
  }
  void finish() { flush(); }

 private:
  size_t room() const { return static_cast<size_t>(std::end(buf_) - p_); }
  void flush() {
    out_.append(buf_, p_);
    p_ = buf_;
  }
  // Large pieces (payloads) go straight to the string: no double copy.
  void put_long(std::string_view s);

  std::string& out_;
  char buf_[kBufferSize];  // deliberately uninitialized
  char* p_ = buf_;
};

// Writers for space obtained from LineWriter::reserve(): each writes at `p`
// and returns the end. A line's small pieces are written through one local
// pointer, which stays in a register: LineWriter::put() has to reload and
// store its position around every piece, since a char store may alias it.
inline char* write_chars(char* p, std::string_view s) { return std::copy(s.begin(), s.end(), p); }

// Longest decimal integer: UINT64_MAX, or INT64_MIN with its sign.
inline constexpr size_t kMaxIntChars = 20;

// `value` in decimal (std::to_chars: no locale, no allocation). The digits
// are written out of line so that the code around them, inlined at each
// field, stays small.
char* write_uint(char* p, uint64_t value);
char* write_sint(char* p, int64_t value);
template <std::integral T>
char* write_int(char* p, T value) {
  if constexpr (std::is_signed_v<T>) {
    return write_sint(p, value);
  } else {
    return write_uint(p, value);
  }
}

// A short `label` (" pid=") then `value` in decimal.
template <std::integral T>
inline void append_int(LineWriter& w, std::string_view label, T value) {
  char* p = w.reserve(label.size() + kMaxIntChars);
  w.commit(write_int(write_chars(p, label), value));
}

// "2026-11-22T18:44:00.123456789Z": RFC 3339 in UTC, always 9 fractional
// digits so that lines have a fixed width and sort as strings.
// Remembers the last second it formatted: events arrive in time order, so
// nearly all of them only need their nanoseconds formatted.
// Thread: one instance per encoder, used by its thread only.
class TimeFormatter {
 public:
  void append(LineWriter& w, uint64_t wall_ns);

 private:
  static constexpr size_t kPrefixLen = sizeof("2026-11-22T18:44:00.") - 1;

  uint64_t second_ = ~uint64_t{0};  // no second cached yet
  char prefix_[kPrefixLen] = {};    // "YYYY-MM-DDTHH:MM:SS." of second_
};

enum class AddrFamily { kUnknown, kIpv4, kIpv6 };

// kUnknown unless the event carries a tuple of a family we can print.
AddrFamily addr_family(const Event& ev);
// "ipv4", "ipv6", "unknown"
std::string_view family_name(AddrFamily family);

// An address in text form: "127.0.0.1", "::1" (same text as inet_ntop);
// empty for kUnknown. `addr` is network order.
class IpText {
 public:
  IpText(AddrFamily family, const uint8_t* addr);
  std::string_view view() const { return {buf_, len_}; }

 private:
  char buf_[sizeof("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255")];
  size_t len_ = 0;
};

// Longest endpoint text: "[ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255]:65535".
inline constexpr size_t kMaxEndpointChars = 53;

// "127.0.0.1:54321", "[::1]:443" (brackets as in URLs, RFC 3986); nothing for
// kUnknown.
char* write_endpoint(char* p, AddrFamily family, const IpText& ip, uint16_t port);

inline std::string_view as_chars(std::span<const uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

bool is_valid_utf8(std::string_view s);

// Standard base64 (RFC 4648 §4) with padding, appended to `out`.
void append_base64(std::string& out, std::span<const uint8_t> in);
inline void append_base64(std::string& out, std::string_view in) {
  append_base64(out, {reinterpret_cast<const uint8_t*>(in.data()), in.size()});
}

// The part of an event's payload an encoder emits under FormatOptions.
struct ShownPayload {
  std::span<const uint8_t> bytes;  // what to emit
  bool truncated = false;          // FormatOptions::truncate cut the payload
  bool utf8 = false;               // `bytes` is valid UTF-8
};

// Applies FormatOptions::truncate. When the cut falls inside a multi-byte
// UTF-8 character of otherwise valid text, the partial character is dropped
// too: a cut must not turn text into binary (base64 / hex dump).
ShownPayload shown_payload(const Event& ev, const FormatOptions& opts);

// Sixteen bytes, for scanning payloads: a byte loop over a 256-byte payload
// cost as much as all the rest of a JSON line. GCC/clang vector extensions:
// SSE2 on x86-64, NEON on arm64, plain code elsewhere. Comparing a Bytes16
// with a byte gives a lane mask (0 or all ones per byte).
using Bytes16 = uint8_t __attribute__((vector_size(16)));

// Index of the first byte of `s` at or after `i` for which `match(byte)` is
// true, or s.size(). `match16(Bytes16)` applies exactly the same test to
// sixteen bytes at once and returns the lane mask. The byte loop handles the
// last few bytes (and, on big-endian machines, the block with the match).
template <class Match16, class Match>
size_t find_byte(std::string_view s, size_t i, Match16 match16, Match match) {
  for (; i + sizeof(Bytes16) <= s.size(); i += sizeof(Bytes16)) {
    Bytes16 v;
    std::memcpy(&v, s.data() + i, sizeof(v));
    const auto lanes = match16(v);
    uint64_t halves[2];
    static_assert(sizeof(lanes) == sizeof(halves));
    std::memcpy(halves, &lanes, sizeof(halves));
    if ((halves[0] | halves[1]) == 0) continue;
    if constexpr (std::endian::native == std::endian::little) {
      // Lanes are 0x00 or 0xff and byte k sits in bits 8k..8k+7, so the
      // lowest set bit gives the first match without a byte loop.
      const int bit = halves[0] != 0 ? std::countr_zero(halves[0]) : 64 + std::countr_zero(halves[1]);
      return i + static_cast<size_t>(bit / 8);
    }
    break;
  }
  while (i < s.size() && !match(static_cast<uint8_t>(s[i]))) ++i;
  return i;
}

// Safe to write to a terminal as is: valid UTF-8 (`utf8`, known by the
// caller) without control characters other than line breaks and tabs, C1
// controls included (some terminals treat U+009B as CSI).
bool is_printable_text(std::span<const uint8_t> bytes, bool utf8);
inline bool is_printable_text(std::string_view s) {
  return is_printable_text({reinterpret_cast<const uint8_t*>(s.data()), s.size()}, is_valid_utf8(s));
}
// `s` with every ASCII control byte replaced by '?': for names the traced
// process chose (comm, HTTP header names and values).
void append_sanitized(LineWriter& w, std::string_view s);

// `hexdump -C` layout, one line per 16 bytes:
// 00000000  47 45 54 20 2f 20 48 54  54 50 2f 31 2e 31 0d 0a  |GET / HTTP/1.1..|
void append_hex_dump(LineWriter& w, std::span<const uint8_t> bytes);

// What an event is (the JSON "type" field; the proto Event.type is mapped
// from it): as the protocol stage decided (http1_request, http2_response,
// websocket, http_exchange, data, ...), else guessed from the chunk's start
// ("http1_request", "http1_response" or "data").
std::string_view payload_type(const Event& ev);

}  // namespace clearcap
