#include "proto/http2/frames.h"

#include <algorithm>
#include <optional>

namespace clearcap::http2 {

bool parse_frame_header(std::span<const uint8_t> in, FrameHeader& h) {
  if (in.size() < kFrameHeaderBytes) return false;
  h.length = uint32_t(in[0]) << 16 | uint32_t(in[1]) << 8 | in[2];
  h.type = in[3];
  h.flags = in[4];
  h.stream_id = (uint32_t(in[5]) << 24 | uint32_t(in[6]) << 16 | uint32_t(in[7]) << 8 | in[8]) & 0x7fffffffu;
  return true;
}

bool plausible(const FrameHeader& h, uint32_t max_frame_bytes) {
  if (h.length > max_frame_bytes) return false;
  switch (static_cast<FrameType>(h.type)) {
    case FrameType::kData:
    case FrameType::kHeaders:
    case FrameType::kPushPromise:
    case FrameType::kContinuation:
      return h.stream_id != 0;
    case FrameType::kPriority:
      return h.stream_id != 0 && h.length == 5;
    case FrameType::kRstStream:
      return h.stream_id != 0 && h.length == 4;
    case FrameType::kSettings:
      return h.stream_id == 0 && h.length % 6 == 0 && (!(h.flags & flags::kAck) || h.length == 0);
    case FrameType::kPing:
      return h.stream_id == 0 && h.length == 8;
    case FrameType::kGoaway:
      return h.stream_id == 0 && h.length >= 8;
    case FrameType::kWindowUpdate:
      return h.length == 4;
  }
  return false;  // an extension type: never a reason to trust the framing
}

namespace {

// Stricter than plausible(), for finding frames in bytes whose framing is
// not known: only the flags the type defines (receivers must ignore others,
// but senders set none), no empty DATA frame that does not end its stream,
// and stream ids below 2^24 (a connection would need millions of requests
// to get there). A run of such headers is then very unlikely to be payload.
bool plausible_unsynced(const FrameHeader& h, uint32_t max_frame_bytes) {
  if (!plausible(h, max_frame_bytes) || h.stream_id >= (1u << 24)) return false;
  uint8_t allowed = 0;
  switch (static_cast<FrameType>(h.type)) {
    case FrameType::kData:
      if (h.length == 0 && !(h.flags & flags::kEndStream)) return false;
      allowed = flags::kEndStream | flags::kPadded;
      break;
    case FrameType::kHeaders:
      allowed = flags::kEndStream | flags::kEndHeaders | flags::kPadded | flags::kPriority;
      break;
    case FrameType::kPushPromise:
      allowed = flags::kEndHeaders | flags::kPadded;
      break;
    case FrameType::kContinuation:
      allowed = flags::kEndHeaders;
      break;
    case FrameType::kSettings:
    case FrameType::kPing:
      allowed = flags::kAck;
      break;
    default:
      break;
  }
  return (h.flags & ~allowed) == 0;
}

}  // namespace

void Framer::feed(std::span<const uint8_t> bytes) {
  compact();
  buf_.insert(buf_.end(), bytes.begin(), bytes.end());
}

void Framer::gap() {
  buf_.clear();
  pos_ = 0;
  in_block_ = false;
  block_ = Frame{};
  synced_ = false;
}

void Framer::compact() {
  if (pos_ == 0) return;
  if (pos_ == buf_.size()) {
    buf_.clear();
  } else {
    buf_.erase(buf_.begin(), buf_.begin() + static_cast<std::ptrdiff_t>(pos_));
  }
  pos_ = 0;
}

bool Framer::sync() {
  const std::span<const uint8_t> all(buf_);
  // A run of kSyncFrames plausible headers is trusted. A run cut short by
  // the end of the data is only a candidate: a later confirmed run wins
  // (the candidate's first "header" was payload), else the search waits at
  // the first candidate for more bytes.
  std::optional<size_t> candidate;
  for (size_t i = pos_; i + kFrameHeaderBytes <= all.size(); ++i) {
    size_t at = i;
    int seen = 0;
    bool broken = false;
    while (seen < kSyncFrames) {
      FrameHeader h;
      if (at > all.size() || !parse_frame_header(all.subspan(at), h)) break;  // runs past the data
      if (!plausible_unsynced(h, limits_.max_frame_bytes)) {
        broken = true;
        break;
      }
      ++seen;
      at += kFrameHeaderBytes + h.length;
    }
    if (broken) continue;
    if (seen < kSyncFrames) {
      if (!candidate) candidate = i;
      continue;
    }
    pos_ = i;
    synced_ = true;
    after_search_ = true;
    return true;
  }
  if (candidate) {
    pos_ = *candidate;
  } else if (all.size() >= kFrameHeaderBytes) {
    // No candidate: keep what could still be the start of a header.
    pos_ = all.size() - (kFrameHeaderBytes - 1);
  }
  return false;
}

Framer::State Framer::next(Frame& out) {
  if (!synced_ && !sync()) return State::kNeedsMoreData;
  for (;;) {
    const std::span<const uint8_t> rest = std::span<const uint8_t>(buf_).subspan(pos_);
    FrameHeader h;
    if (!parse_frame_header(rest, h)) return State::kNeedsMoreData;
    if (h.length > limits_.max_frame_bytes) return fail();
    if (rest.size() < kFrameHeaderBytes + h.length) return State::kNeedsMoreData;
    const std::span<const uint8_t> p = rest.subspan(kFrameHeaderBytes, h.length);
    pos_ += kFrameHeaderBytes + h.length;
    const auto type = static_cast<FrameType>(h.type);
    const size_t wire = kFrameHeaderBytes + h.length;

    if (in_block_) {
      if (type != FrameType::kContinuation || h.stream_id != block_.stream_id) return fail();
      if (block_.payload.size() + p.size() > limits_.max_header_block_bytes) return fail();
      block_.payload.insert(block_.payload.end(), p.begin(), p.end());
      block_.wire_bytes += wire;
      if (h.flags & flags::kEndHeaders) {
        in_block_ = false;
        out = std::move(block_);
        block_ = Frame{};
        return State::kFrame;
      }
      continue;
    }

    switch (type) {
      case FrameType::kContinuation:
        // Found by searching: the block it continues began before the
        // capture did. Otherwise a protocol error.
        if (after_search_) continue;
        return fail();
      case FrameType::kData:
      case FrameType::kHeaders:
      case FrameType::kPushPromise: {
        if (!plausible(h, limits_.max_frame_bytes)) return fail();
        size_t from = 0, to = p.size();
        if (h.flags & flags::kPadded) {
          if (p.empty() || size_t(p[0]) + 1 > p.size()) return fail();
          from = 1;
          to = p.size() - p[0];
        }
        Frame f;
        f.type = type;
        f.flags = h.flags;
        f.stream_id = h.stream_id;
        f.wire_bytes = wire;
        if (type == FrameType::kHeaders && (h.flags & flags::kPriority)) from += 5;
        if (type == FrameType::kPushPromise) {
          if (to < from + 4) return fail();
          f.promised_stream_id = (uint32_t(p[from]) << 24 | uint32_t(p[from + 1]) << 16 | uint32_t(p[from + 2]) << 8 |
                                  p[from + 3]) & 0x7fffffffu;
          from += 4;
        }
        if (from > to) return fail();
        f.payload.assign(p.begin() + static_cast<std::ptrdiff_t>(from), p.begin() + static_cast<std::ptrdiff_t>(to));
        after_search_ = false;
        if (type != FrameType::kData && !(h.flags & flags::kEndHeaders)) {
          if (f.payload.size() > limits_.max_header_block_bytes) return fail();
          in_block_ = true;
          block_ = std::move(f);
          continue;
        }
        out = std::move(f);
        return State::kFrame;
      }
      case FrameType::kPriority:
      case FrameType::kRstStream:
      case FrameType::kSettings:
      case FrameType::kPing:
      case FrameType::kGoaway:
      case FrameType::kWindowUpdate:
        if (!plausible(h, limits_.max_frame_bytes)) return fail();
        out = Frame{type, h.flags, h.stream_id, std::vector<uint8_t>(p.begin(), p.end()), 0, wire};
        after_search_ = false;
        return State::kFrame;
    }
    // An extension frame type: ignored, as RFC 9113 5.5 requires.
  }
}

Framer::State Framer::fail() {
  // Drop the frame's start and search again from the next byte.
  in_block_ = false;
  block_ = Frame{};
  synced_ = false;
  if (pos_ < buf_.size()) ++pos_;
  return State::kInvalid;
}

}  // namespace clearcap::http2
