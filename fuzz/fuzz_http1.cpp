// One byte stream through an HTTP/1.x request parser and a response parser,
// cut where the input says, with gaps. Layout: byte 0 = options (bits 0-3:
// how many cut bytes follow; bit 4: small limits; bit 5: the first response
// answers a HEAD; bit 6: a CONNECT; bit 7: a gap at the end), then the cut
// bytes (one per piece: bits 0-6: the piece is 1..128 bytes long; bit 7: a
// gap after it), then the stream (what the cuts leave is the last piece). Invariants: what a message keeps is within the
// limits (a huge Content-Length reserves nothing beyond them), body_cut says
// whether bytes were left out, timestamps follow the feeds, and after an
// upgrade nothing is parsed.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <span>
#include <vector>

#include "proto/http1/parser.h"

using namespace clearcap;

namespace {

void check(const http::Message& m, http::Kind kind, const http1::Limits& limits, size_t input, uint64_t max_ts) {
  if (m.kind != kind) std::abort();
  if (m.version != http::Version::kHttp10 && m.version != http::Version::kHttp11) std::abort();
  if (m.body.size() > limits.max_body_bytes || m.body.size() > m.body_bytes) std::abort();
  if (m.body_cut != (m.body_bytes > m.body.size())) std::abort();
  // Reserved for what may be kept, grown by doubling at most.
  if (m.body.capacity() > 2 * limits.max_body_bytes + 16) std::abort();
  if (m.body_bytes > input || m.header_bytes > limits.max_header_bytes) std::abort();
  size_t kept = 0;
  for (const auto& [k, v] : m.headers) kept += k.size() + v.size();
  if (kept > limits.max_header_bytes || m.path.size() > limits.max_header_bytes ||
      m.reason.size() > limits.max_header_bytes)
    std::abort();
  if (m.first_ns > m.last_ns || m.last_ns > max_ts) std::abort();
  if (kind == http::Kind::kResponse && (m.status < 0 || m.status > 999)) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t opts = data[0];
  const size_t ncuts = std::min<size_t>(opts & 0x0f, size - 1);
  const std::span<const uint8_t> cuts(data + 1, ncuts);
  const std::span<const uint8_t> in(data + 1 + ncuts, size - 1 - ncuts);
  const http1::Limits limits = (opts & 0x10) ? http1::Limits{.max_header_bytes = 200, .max_body_bytes = 32}
                                              : http1::Limits{};

  http1::looks_like_request(in);
  http1::looks_like_response(in);

  for (const auto kind : {http::Kind::kRequest, http::Kind::kResponse}) {
    http1::Parser p(kind, limits);
    p.expect_response(opts & 0x20, opts & 0x40);
    p.expect_response(false);
    std::vector<http::Message> out;
    size_t at = 0;
    uint64_t ts = 0;
    auto feed = [&](size_t to) {
      const bool was_upgraded = p.upgraded();
      const auto st = p.feed(in.subspan(at, to - at), ++ts, out);
      if (was_upgraded && st != http::ParseState::kIgnored) std::abort();
      if (st == http::ParseState::kIgnored && !was_upgraded) std::abort();
      at = to;
    };
    for (uint8_t c : cuts) {
      const size_t to = std::min(in.size(), at + (c & 0x7f) + 1);
      feed(to);
      if (c & 0x80) p.gap(out);
    }
    feed(in.size());
    if (opts & 0x80) p.gap(out);
    for (const auto& m : out) check(m, kind, limits, in.size(), ts);
    if (out.size() > in.size()) std::abort();
  }
  return 0;
}
