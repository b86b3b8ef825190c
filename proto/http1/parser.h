// HTTP/1.x message framing for one direction of one connection, on
// http-parser (Debian libhttp-parser-dev): start line, headers,
// Content-Length and chunked bodies (trailers kept), keep-alive and
// pipelining (any number of messages per feed), 1xx responses, responses
// without a body (to HEAD, 204, 304), and upgrades (101, CONNECT): after one
// the direction's bytes are not HTTP and feed() answers kIgnored.
//
// A stream gap (lost bytes) abandons the message in progress (returned as
// incomplete) and the parser searches for the next message start — a
// request line ("METHOD SP target SP HTTP/1.x") or a status line
// ("HTTP/1.x SP 3DIGIT") at the start of a line — before it parses again,
// so a gap never turns the next message into garbage. The same search runs
// after a parse error (kInvalid). (Not only at a line start, in fact: a body
// that does not end in a newline, JSON or binary, runs straight into the
// next message; see parser.cpp.)
//
// Bounded: start line + headers at most Limits::max_header_bytes (else
// kInvalid), the kept body at most Limits::max_body_bytes (the rest is
// counted in body_bytes, body_cut set); a 1 GB Content-Length costs no
// memory.
// Thread: one owner (the processor thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <span>
#include <vector>

#include "proto/http/message.h"

namespace clearcap::http1 {

struct Limits {
  size_t max_header_bytes = 64 * 1024;
  size_t max_body_bytes = 64 * 1024;
};

class Parser {
 public:
  // `kind`: what this direction carries (requests: the client's writes on
  // a client, its reads on a server; responses: the other direction).
  Parser(http::Kind kind, Limits limits = {});
  ~Parser();
  Parser(Parser&&) noexcept;
  Parser& operator=(Parser&&) noexcept;

  // Appends bytes of the direction's stream, in order, carried by a chunk
  // whose timestamp is `ts_ns`; every message completed by them is appended
  // to `out` (first_ns/last_ns from the chunks that carried its first and
  // last byte). Returns kSuccess when at least one message completed,
  // kNeedsMoreData when none did and the bytes were all understood,
  // kInvalid on a parse error (the bytes after the error are searched for
  // a message start; what was in progress is appended to `out` as
  // incomplete when its headers were complete), kIgnored after an upgrade.
  http::ParseState feed(std::span<const uint8_t> bytes, uint64_t ts_ns, std::vector<http::Message>& out);

  // Bytes were lost before the next feed(): the message in progress, if
  // its headers were complete, is appended to `out` as incomplete; the
  // parser then searches for the next message start.
  void gap(std::vector<http::Message>& out);

  // Responses: the request this direction's next response answers was a
  // HEAD (true) or not; in request order. Without a note, a response is
  // taken to answer a non-HEAD request. (A CONNECT's 2xx response is an
  // upgrade: pass `connect`.)
  void expect_response(bool head, bool connect = false);

  // Whether bytes of a message are buffered or in progress (for "started
  // mid-message" decisions by the caller).
  bool in_message() const;
  bool upgraded() const;
  // Requests: the upgrade this direction asked for (Upgrade, CONNECT) was
  // turned down - the answer was no 101 (or no 2xx to a CONNECT) - so the
  // bytes that follow are HTTP again: the parser searches for the next
  // message start (bytes fed while it waited for the answer were not
  // parsed).
  void decline_upgrade();
  // Whether the last feed() spent bytes searching for a message start
  // (after a gap or an error): some of its bytes belong to no message.
  bool searched() const;
  // Messages abandoned (incomplete) and parse errors, for the layer's counters.
  uint64_t parse_errors() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Whether `bytes` start like an HTTP/1.x request ("GET /x HTTP/1.1", any
// token method followed by a space and a target) or a response
// ("HTTP/1.1 200"): what protocol detection asks of the first bytes of a
// direction. kNeedsMoreData when too short to tell.
http::ParseState looks_like_request(std::span<const uint8_t> bytes);
http::ParseState looks_like_response(std::span<const uint8_t> bytes);

}  // namespace clearcap::http1
