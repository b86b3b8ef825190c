#include "sinks/format_util.h"

#include <arpa/inet.h>
#include <sys/socket.h>

#include <chrono>
#include <iterator>

#include <fmt/format.h>
#include <simdjson.h>

namespace clearcap {

void append_rfc3339(std::string& out, uint64_t wall_ns) {
  using namespace std::chrono;
  const sys_seconds secs{seconds{wall_ns / 1'000'000'000}};
  const auto day = floor<days>(secs);
  const year_month_day ymd{day};
  const hh_mm_ss hms{secs - day};
  fmt::format_to(std::back_inserter(out), "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:09}Z",
                 static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                 static_cast<unsigned>(ymd.day()), hms.hours().count(), hms.minutes().count(),
                 hms.seconds().count(), wall_ns % 1'000'000'000);
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

void append_ip(std::string& out, AddrFamily family, const uint8_t* addr) {
  if (family == AddrFamily::kUnknown) return;
  char buf[INET6_ADDRSTRLEN];
  const int af = family == AddrFamily::kIpv4 ? AF_INET : AF_INET6;
  // Cannot fail: the family is valid and the buffer fits any address.
  if (inet_ntop(af, addr, buf, sizeof(buf)) != nullptr) out += buf;
}

void append_endpoint(std::string& out, AddrFamily family, const uint8_t* addr, uint16_t port) {
  if (family == AddrFamily::kUnknown) return;
  const bool v6 = family == AddrFamily::kIpv6;
  if (v6) out += '[';
  append_ip(out, family, addr);
  out += v6 ? "]:" : ":";
  append_int(out, port);
}

bool is_valid_utf8(std::string_view s) { return simdjson::validate_utf8(s.data(), s.size()); }

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

}  // namespace clearcap
