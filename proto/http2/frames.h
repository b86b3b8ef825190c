// HTTP/2 framing (RFC 9113 section 4 and 6) for one direction of one
// connection: the reassembled byte stream in, frames out, with a header
// block (HEADERS or PUSH_PROMISE and its CONTINUATIONs) handed over whole,
// padding and priority fields removed. What the frames mean - streams,
// pairing, HPACK - is the caller's.
//
// Picked up mid-connection, the stream may start inside a frame: the
// framer looks for a run of three plausible frame headers (known types,
// only the flags each type defines, sane lengths, stream ids where each
// type allows them) before it trusts the
// framing, and after a stream gap (lost bytes) it searches again the same
// way, so a gap never turns the next frame into garbage.
//
// Bounded: a frame longer than max_frame_bytes (SETTINGS_MAX_FRAME_SIZE,
// 16 KiB unless announced) and a header block longer than
// max_header_block_bytes are errors; the buffer never holds more than one
// frame plus one header block.
// Thread: one owner (the processor thread).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

namespace clearcap::http2 {

enum class FrameType : uint8_t {
  kData = 0x0,
  kHeaders = 0x1,
  kPriority = 0x2,
  kRstStream = 0x3,
  kSettings = 0x4,
  kPushPromise = 0x5,
  kPing = 0x6,
  kGoaway = 0x7,
  kWindowUpdate = 0x8,
  kContinuation = 0x9,
};

namespace flags {
constexpr uint8_t kEndStream = 0x1;  // DATA, HEADERS
constexpr uint8_t kAck = 0x1;        // SETTINGS, PING
constexpr uint8_t kEndHeaders = 0x4;
constexpr uint8_t kPadded = 0x8;
constexpr uint8_t kPriority = 0x20;
}  // namespace flags

constexpr std::string_view kClientPreface = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
constexpr size_t kFrameHeaderBytes = 9;

struct FrameHeader {
  uint32_t length = 0;  // 24 bits
  uint8_t type = 0;
  uint8_t flags = 0;
  uint32_t stream_id = 0;  // 31 bits
};

// The 9-byte header at the start of `in` (false when shorter).
bool parse_frame_header(std::span<const uint8_t> in, FrameHeader& h);
// Whether a header is one this framer would accept where framing is not yet
// trusted: a known type, a length within `max_frame_bytes`, and a stream id
// where the type allows one (0 for SETTINGS, PING, GOAWAY; not 0 for
// streams' frames), and the fixed lengths of PRIORITY, RST_STREAM, PING,
// WINDOW_UPDATE and SETTINGS (a multiple of 6).
bool plausible(const FrameHeader& h, uint32_t max_frame_bytes);

// One frame, or one whole header block.
struct Frame {
  FrameType type = FrameType::kData;
  uint8_t flags = 0;  // of the first frame (END_STREAM); END_HEADERS is implied for blocks
  uint32_t stream_id = 0;
  // DATA: the data without padding. HEADERS, PUSH_PROMISE: the whole header
  // block (fragments joined, padding and priority removed). Others: the
  // frame's payload as sent.
  std::vector<uint8_t> payload;
  uint32_t promised_stream_id = 0;  // PUSH_PROMISE
  size_t wire_bytes = 0;            // bytes on the wire, headers included (all frames of a block)
};

struct FramerLimits {
  uint32_t max_frame_bytes = 16384;            // SETTINGS_MAX_FRAME_SIZE of the receiver
  size_t max_header_block_bytes = 256 * 1024;  // joined HEADERS + CONTINUATION
};

class Framer {
 public:
  enum class State {
    kFrame,          // `out` has a frame
    kNeedsMoreData,  // all input used; call again with more
    kInvalid,        // a framing error (counted by the caller); the framer searches for frames again
  };
  using Limits = FramerLimits;
  // `from_start`: the stream starts at the connection's first byte (after
  // the client preface, if the caller strips it); false: picked up mid-way.
  explicit Framer(bool from_start, Limits limits = {}) : synced_(from_start), limits_(limits) {}

  // Appends bytes of the direction's stream, in order.
  void feed(std::span<const uint8_t> bytes);
  // Bytes were lost before the next feed(): whatever is buffered is dropped
  // and the framer searches for frames again.
  void gap();
  // The next frame, if one is complete.
  State next(Frame& out);
  // SETTINGS_MAX_FRAME_SIZE acknowledged by this direction's receiver.
  void set_max_frame_bytes(uint32_t n) { limits_.max_frame_bytes = n; }
  bool synced() const { return synced_; }
  size_t buffered() const { return buf_.size() - pos_; }

 private:
  // Mid-way: skips to the first offset where kSyncFrames plausible headers
  // follow each other (or the buffered bytes end inside such a run).
  bool sync();
  void compact();
  State fail();  // framing error: search for frames again
  static constexpr int kSyncFrames = 3;
  std::vector<uint8_t> buf_;
  size_t pos_ = 0;
  bool synced_;
  bool after_search_ = false;  // synced by searching, and no frame but CONTINUATIONs since
  Limits limits_;
  // A header block in progress (HEADERS or PUSH_PROMISE without END_HEADERS).
  bool in_block_ = false;
  Frame block_;
};

}  // namespace clearcap::http2
