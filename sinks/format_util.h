// Formatting pieces shared by the encoders: wall-clock time, addresses,
// numbers and the payload window an encoder shows. Everything appends to a
// caller-owned string, so encoders allocate nothing per event once that
// string has grown to its working size.
#pragma once

#include <charconv>
#include <concepts>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "core/event.h"
#include "sinks/event_sink.h"

namespace clearcap {

inline constexpr char kHexDigits[] = "0123456789abcdef";

// Appends `value` in decimal. std::to_chars: no locale, no allocation.
template <std::integral T>
void append_int(std::string& out, T value) {
  char buf[24];  // enough for any 64-bit value with sign
  const auto res = std::to_chars(buf, buf + sizeof(buf), value);
  out.append(buf, res.ptr);
}

// "2026-11-22T18:44:00.123456789Z": RFC 3339 in UTC, always 9 fractional
// digits so that lines have a fixed width and sort as strings.
void append_rfc3339(std::string& out, uint64_t wall_ns);

enum class AddrFamily { kUnknown, kIpv4, kIpv6 };

// kUnknown unless the event carries a tuple of a family we can print.
AddrFamily addr_family(const Event& ev);
// "ipv4", "ipv6", "unknown"
std::string_view family_name(AddrFamily family);
// "127.0.0.1", "::1"; nothing for kUnknown. `addr` is network order.
void append_ip(std::string& out, AddrFamily family, const uint8_t* addr);
// "127.0.0.1:54321", "[::1]:443" (brackets as in URLs, RFC 3986); nothing for
// kUnknown.
void append_endpoint(std::string& out, AddrFamily family, const uint8_t* addr, uint16_t port);

inline std::string_view as_chars(std::span<const uint8_t> bytes) {
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

bool is_valid_utf8(std::string_view s);

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

}  // namespace clearcap
