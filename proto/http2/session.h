// Both directions of one HTTP/2 connection: frames (framer.h) and header
// blocks (hpack.h) turned into messages, one per stream and direction - a
// request from the HEADERS of the side that sends requests, with its DATA as
// body and its trailers, complete at END_STREAM; a response likewise; 1xx
// responses and pushed requests (PUSH_PROMISE) as messages of their own.
//
// Which side sends requests: the one that began with the client preface, or
// whose header blocks carry :method (the other one's carry :status). A
// connection picked up mid-way learns it from its first decodable block; a
// block that needs HPACK entries sent before capture started yields a
// message with headers_unknown and the side's kind.
//
// Settings are applied as soon as they are seen (not at their ACK): a
// SETTINGS_HEADER_TABLE_SIZE bounds the other side's HPACK table (the
// encoder announces its real size in-band, which the decoder follows), a
// SETTINGS_MAX_FRAME_SIZE the other side's frames.
//
// Bounded: streams with a message in progress at most Limits::max_streams
// (the oldest is then given up, reported incomplete and counted), bodies at
// most Limits::max_body_bytes kept (the rest counted), frames and header
// blocks as the framer's and HPACK's limits say.
// Thread: one owner (the processor thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <vector>

#include "proto/http/message.h"
#include "proto/http2/frames.h"
#include "proto/http2/hpack.h"

namespace clearcap::http2 {

struct SessionLimits {
  FramerLimits framer;
  HpackLimits hpack;
  size_t max_body_bytes = 64 * 1024;
  size_t max_streams = 256;
};

class Session {
 public:
  using Limits = SessionLimits;
  // `from_start`: both directions are seen from the connection's first
  // byte (the client's begins with the preface).
  explicit Session(bool from_start, Limits limits = {});

  // Bytes of side `side` (0 or 1, the caller's choice, fixed for the
  // connection), in order, carried by a chunk with timestamp `ts_ns`.
  // Messages completed are appended to `out`. kSuccess when one completed,
  // kNeedsMoreData otherwise, kInvalid when a framing or HPACK error was
  // met (counted; the framer searches for frames again).
  http::ParseState feed(int side, std::span<const uint8_t> bytes, uint64_t ts_ns, std::vector<http::Message>& out);
  // Bytes of `side` were lost: its framer searches again, its messages in
  // progress are appended to `out` as incomplete, and its HPACK state is
  // unknown from here on (a lost header block changed the table).
  void gap(int side, std::vector<http::Message>& out);
  // The connection is given up (evicted, capture ends): every message in
  // progress, as incomplete.
  void finish(std::vector<http::Message>& out);

  // The side that sends requests, once known.
  std::optional<int> request_side() const { return request_side_; }

  struct Counters {
    uint64_t frames = 0;
    uint64_t frame_errors = 0;     // framing errors (each followed by a search)
    uint64_t hpack_unknown = 0;    // header blocks that needed entries from before capture
    uint64_t hpack_errors = 0;     // header blocks that were not HPACK or beyond the limits
    uint64_t streams_evicted = 0;  // streams given up at max_streams
  };
  const Counters& counters() const { return counters_; }

 private:
  struct Side {
    Framer framer;
    HpackDecoder hpack;
    size_t preface_left;  // bytes of the client preface still to match at this side's start
    Side(bool from_start, const Limits& l)
        : framer(from_start, l.framer), hpack(from_start, l.hpack), preface_left(from_start ? kClientPreface.size() : 0) {}
  };
  struct Stream {
    std::optional<http::Message> msg[2];  // in progress, by side
  };
  void on_frame(int side, Frame& f, uint64_t ts_ns, std::vector<http::Message>& out);
  void on_headers(int side, Frame& f, uint64_t ts_ns, std::vector<http::Message>& out);
  void on_settings(int side, const Frame& f);
  http::Kind kind_of(int side) const;
  Stream* stream(uint32_t id, std::vector<http::Message>& out);
  void complete(int side, uint32_t id, Stream& s, uint64_t ts_ns, std::vector<http::Message>& out);

  Limits limits_;
  Side sides_[2];
  std::optional<int> request_side_;
  bool role_known_ = false;        // request_side_ from pseudo-headers, not guessed
  uint32_t max_stream_seen_ = 0;   // highest stream id with a HEADERS frame
  std::map<uint32_t, Stream> streams_;  // ordered: the oldest (lowest id) is evicted first
  Counters counters_;
  Frame frame_;  // reused: its payload keeps its capacity
  std::vector<Header> headers_;
};

}  // namespace clearcap::http2
