#include "proto/http2/session.h"

#include <algorithm>
#include <cstring>

namespace clearcap::http2 {

namespace {

constexpr uint16_t kSettingsHeaderTableSize = 0x1;
constexpr uint16_t kSettingsMaxFrameSize = 0x5;

std::span<const uint8_t> as_bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

Session::Session(bool from_start, Limits limits)
    : limits_(limits), sides_{Side(from_start, limits), Side(from_start, limits)} {}

http::Kind Session::kind_of(int side) const {
  if (request_side_) return *request_side_ == side ? http::Kind::kRequest : http::Kind::kResponse;
  return http::Kind::kRequest;  // unknown yet: the caller's guess is as good; fixed by the first :status
}

http::ParseState Session::feed(int side, std::span<const uint8_t> bytes, uint64_t ts_ns,
                               std::vector<http::Message>& out) {
  Side& s = sides_[side & 1];
  if (s.preface_left) {
    // Match the client preface at this side's start; a side that does not
    // begin with it is the server's, and the bytes matched so far (none in
    // practice: a server begins with a SETTINGS frame) are frames.
    const size_t done = kClientPreface.size() - s.preface_left;
    const size_t n = std::min(s.preface_left, bytes.size());
    if (std::memcmp(bytes.data(), kClientPreface.data() + done, n) == 0) {
      s.preface_left -= n;
      bytes = bytes.subspan(n);
      if (s.preface_left == 0) request_side_ = side & 1, role_known_ = true;
    } else {
      s.preface_left = 0;
      s.framer.feed(as_bytes(kClientPreface.substr(0, done)));
    }
  }
  s.framer.feed(bytes);
  const size_t before = out.size();
  bool invalid = false;
  for (;;) {
    const Framer::State st = s.framer.next(frame_);
    if (st == Framer::State::kNeedsMoreData) break;
    if (st == Framer::State::kInvalid) {
      ++counters_.frame_errors;
      invalid = true;
      continue;
    }
    ++counters_.frames;
    on_frame(side & 1, frame_, ts_ns, out);
  }
  if (invalid) return http::ParseState::kInvalid;
  return out.size() > before ? http::ParseState::kSuccess : http::ParseState::kNeedsMoreData;
}

Session::Stream* Session::stream(uint32_t id, std::vector<http::Message>& out) {
  auto it = streams_.find(id);
  if (it != streams_.end()) return &it->second;
  if (streams_.size() >= limits_.max_streams) {
    // The oldest stream with a message in progress is given up: a peer that
    // opens streams without ending them cannot grow this table.
    auto oldest = streams_.begin();
    for (auto& m : oldest->second.msg)
      if (m) {
        m->incomplete = true;
        out.push_back(std::move(*m));
      }
    streams_.erase(oldest);
    ++counters_.streams_evicted;
  }
  return &streams_[id];
}

void Session::on_frame(int side, Frame& f, uint64_t ts_ns, std::vector<http::Message>& out) {
  switch (f.type) {
    case FrameType::kHeaders:
    case FrameType::kPushPromise:
      on_headers(side, f, ts_ns, out);
      return;
    case FrameType::kData: {
      if (f.stream_id == 0) return;
      Stream* st = stream(f.stream_id, out);
      auto& m = st->msg[side];
      if (!m) {
        // DATA without its HEADERS: picked up in the middle of the message.
        m.emplace();
        m->version = http::Version::kHttp2;
        m->kind = kind_of(side);
        m->stream_id = f.stream_id;
        m->first_ns = ts_ns;
        m->incomplete = true;
      }
      m->body_bytes += f.payload.size();
      const size_t room = limits_.max_body_bytes - std::min(limits_.max_body_bytes, m->body.size());
      const size_t keep = std::min(room, f.payload.size());
      m->body.append(reinterpret_cast<const char*>(f.payload.data()), keep);
      if (keep < f.payload.size()) m->body_cut = true;
      m->last_ns = ts_ns;
      if (f.flags & flags::kEndStream) complete(side, f.stream_id, *st, ts_ns, out);
      return;
    }
    case FrameType::kRstStream: {
      auto it = streams_.find(f.stream_id);
      if (it == streams_.end()) return;
      for (auto& m : it->second.msg)
        if (m) {
          m->incomplete = true;
          out.push_back(std::move(*m));
        }
      streams_.erase(it);
      return;
    }
    case FrameType::kSettings:
      if (!(f.flags & flags::kAck)) on_settings(side, f);
      return;
    default:
      return;  // PING, GOAWAY, WINDOW_UPDATE, PRIORITY, CONTINUATION (joined by the framer)
  }
}

void Session::on_settings(int side, const Frame& f) {
  // This side's receiver limits apply to what the other side sends.
  Side& other = sides_[side ^ 1];
  for (size_t i = 0; i + 6 <= f.payload.size(); i += 6) {
    const uint8_t* p = f.payload.data() + i;
    const uint16_t id = uint16_t(p[0] << 8 | p[1]);
    const uint32_t v = uint32_t(p[2]) << 24 | uint32_t(p[3]) << 16 | uint32_t(p[4]) << 8 | p[5];
    if (id == kSettingsHeaderTableSize) other.hpack.set_max_table_size(v);
    if (id == kSettingsMaxFrameSize && v >= 16384 && v <= 16777215) other.framer.set_max_frame_bytes(v);
  }
}

void Session::on_headers(int side, Frame& f, uint64_t ts_ns, std::vector<http::Message>& out) {
  const HpackDecoder::Status hs = sides_[side].hpack.decode(f.payload, headers_);
  if (hs == HpackDecoder::Status::kInvalid) {
    ++counters_.hpack_errors;
  } else if (hs == HpackDecoder::Status::kUnknownState) {
    ++counters_.hpack_unknown;
  }
  // Who sends requests, from the pseudo-headers (a pushed request's come
  // from the server side: not a hint).
  if (hs == HpackDecoder::Status::kSuccess && f.type == FrameType::kHeaders && !headers_.empty() &&
      (headers_.front().name == ":method" || headers_.front().name == ":status")) {
    request_side_ = headers_.front().name == ":method" ? side : side ^ 1;
    role_known_ = true;
  } else if (!role_known_ && f.type == FrameType::kHeaders && f.stream_id > max_stream_seen_) {
    // Undecodable: the first header block on a stream newer than any seen
    // opens it, and clients open streams (a guess until a block decodes).
    request_side_ = side;
  }
  if (f.type == FrameType::kHeaders) max_stream_seen_ = std::max(max_stream_seen_, f.stream_id);
  const bool push = f.type == FrameType::kPushPromise;
  const uint32_t id = push ? f.promised_stream_id : f.stream_id;
  if (id == 0) return;
  Stream* st = stream(id, out);
  // A pushed request is the promised stream's request, whatever side sent it.
  const int slot = push ? side ^ 1 : side;
  auto& m = st->msg[slot];
  if (m && m->header_bytes > 0 && !push) {
    // A second header block on a message that has its headers: trailers.
    for (auto& h : headers_) m->headers.emplace_back(std::move(h.name), std::move(h.value));
    m->header_bytes += f.wire_bytes;
    m->last_ns = ts_ns;
    if (f.flags & flags::kEndStream) complete(slot, id, *st, ts_ns, out);
    return;
  }
  if (!m) {
    m.emplace();
    m->first_ns = ts_ns;
  }
  m->version = http::Version::kHttp2;
  m->stream_id = id;
  m->kind = push ? http::Kind::kRequest : kind_of(side);
  m->header_bytes += f.wire_bytes;
  m->last_ns = ts_ns;
  m->headers_unknown = hs != HpackDecoder::Status::kSuccess;
  for (auto& h : headers_) {
    if (h.name.starts_with(':')) {
      if (h.name == ":method") m->method = h.value, m->kind = http::Kind::kRequest;
      else if (h.name == ":path") m->path = h.value;
      else if (h.name == ":authority") m->authority = h.value;
      else if (h.name == ":scheme") m->scheme = h.value;
      else if (h.name == ":status") {
        m->kind = http::Kind::kResponse;
        int code = 0;
        for (char c : h.value) code = c >= '0' && c <= '9' && code < 1000 ? code * 10 + (c - '0') : 1000;
        m->status = code < 1000 ? code : 0;
      }
    }
    m->headers.emplace_back(std::move(h.name), std::move(h.value));
  }
  // Without :authority a request names its host in a Host header (RFC
  // 9113 8.3.1), as HTTP/1's do: `authority` is the one field to read.
  if (m->kind == http::Kind::kRequest && m->authority.empty()) m->authority = std::string(m->header("host"));
  if (push) {
    complete(slot, id, *st, ts_ns, out);
    return;
  }
  // 1xx: an interim response of its own; the final one follows on the stream.
  if (m->kind == http::Kind::kResponse && m->status >= 100 && m->status < 200) {
    out.push_back(std::move(*m));
    m.reset();
    return;
  }
  if (f.flags & flags::kEndStream) complete(side, id, *st, ts_ns, out);
}

void Session::complete(int side, uint32_t id, Stream& s, uint64_t ts_ns, std::vector<http::Message>& out) {
  auto& m = s.msg[side];
  if (!m) return;
  m->last_ns = ts_ns;
  out.push_back(std::move(*m));
  m.reset();
  if (!s.msg[0] && !s.msg[1]) streams_.erase(id);
}

void Session::gap(int side, std::vector<http::Message>& out) {
  side &= 1;
  sides_[side].framer.gap();
  sides_[side].preface_left = 0;
  // The lost bytes may have held a header block: the table is unknown now.
  sides_[side].hpack = HpackDecoder(false, limits_.hpack);
  for (auto it = streams_.begin(); it != streams_.end();) {
    auto& m = it->second.msg[side];
    if (m) {
      m->incomplete = true;
      out.push_back(std::move(*m));
      m.reset();
    }
    if (!it->second.msg[0] && !it->second.msg[1]) it = streams_.erase(it);
    else ++it;
  }
}

void Session::finish(std::vector<http::Message>& out) {
  for (auto& [id, st] : streams_)
    for (auto& m : st.msg)
      if (m) {
        m->incomplete = true;
        out.push_back(std::move(*m));
      }
  streams_.clear();
}

}  // namespace clearcap::http2
