#include "proto/http/stage.h"

#include <strings.h>

#include <algorithm>
#include <cstring>
#include <deque>
#include <map>

#include <fmt/format.h>

#include "proto/http1/parser.h"
#include "proto/http2/session.h"

namespace clearcap::http {

namespace {

constexpr size_t kProbeMax = 4096;  // undecided bytes kept per side while detecting
constexpr int kMaxTries = 8;      // chunk starts looked at before a connection counts as not HTTP
constexpr uint32_t kRetryEvery = 256;  // a connection that is not HTTP is looked at again every N events

int side_of(const Event& ev) { return ev.direction == Direction::kWrite ? 0 : 1; }

std::span<const uint8_t> as_bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// A run of HTTP/2 frame headers from the start of `b`: at least two, or one
// that ends exactly where the bytes do (a library call writes whole frames).
ParseState looks_like_frames(std::span<const uint8_t> b) {
  size_t off = 0;
  int frames = 0;
  while (off + http2::kFrameHeaderBytes <= b.size()) {
    http2::FrameHeader h;
    http2::parse_frame_header(b.subspan(off), h);
    if (!http2::plausible(h, 16384) || h.stream_id >= (1u << 24)) return ParseState::kInvalid;
    off += http2::kFrameHeaderBytes + h.length;
    if (++frames >= 2 || off == b.size()) return ParseState::kSuccess;
  }
  // One frame running past the bytes is too little to tell.
  return frames == 0 && b.size() < http2::kFrameHeaderBytes ? ParseState::kNeedsMoreData : ParseState::kInvalid;
}

bool is_websocket_upgrade(const Message& m) {
  const std::string_view u = m.header("upgrade");
  return u.size() == 9 && strncasecmp(u.data(), "websocket", 9) == 0;
}

}  // namespace

struct Stage::Conn {
  enum class Proto : uint8_t { kUnknown, kHttp1, kHttp2, kOther };
  Proto proto = Proto::kUnknown;
  bool websocket = false;
  bool seen[2] = {false, false};
  uint64_t next_seq[2] = {0, 0};
  int tries = 0;
  uint32_t other_events = 0;
  std::string probe[2];
  uint64_t probe_seq[2] = {0, 0};  // offset of probe[side][0]
  bool held_frames[2] = {false, false};  // probe[side] holds frames seen before the other side's first bytes
  int request_side = -1;
  std::unique_ptr<http1::Parser> h1[2];
  std::unique_ptr<http2::Session> h2;
  std::deque<Message> waiting;          // HTTP/1: requests awaiting their responses, in order
  std::map<uint32_t, Message> streams;  // HTTP/2: requests awaiting their responses, by stream
  // Responses complete before their request (an early 413, a reset
  // upload): HTTP/1 while the request is still in progress, HTTP/2 by
  // stream; paired when the request completes.
  std::deque<Message> early;
  std::map<uint32_t, Message> early_streams;
  Lru::iterator lru;
  // Who the connection is, for the events the stage makes (a data event's
  // views point into its batch and do not outlive the call).
  uint32_t pid = 0, tid = 0, uid = 0;
  int32_t fd = -1;
  uint64_t cgroup_id = 0, conn_id = 0;
  uint8_t source[2] = {0, 0};  // the library function of each direction
  uint16_t family = 0, lport = 0, rport = 0;
  uint32_t flags = 0;
  uint8_t laddr[16] = {}, raddr[16] = {};
  std::string comm;
  int64_t wall_offset = 0;  // wall_ns - boot_ns
  uint64_t last_boot_ns = 0;

  // The side that sends requests (0 = this process writes them), 0 while
  // an HTTP/2 connection picked up mid-way has not shown it yet.
  int req_side() const {
    if (request_side >= 0) return request_side;
    if (h2 && h2->request_side()) return *h2->request_side();
    return 0;
  }

  void learn(const Event& ev) {
    pid = ev.pid, tid = ev.tid, uid = ev.uid, fd = ev.fd, cgroup_id = ev.cgroup_id, conn_id = ev.conn_id;
    comm.assign(ev.comm);
    wall_offset = int64_t(ev.wall_ns) - int64_t(ev.boot_ns);
    last_boot_ns = ev.boot_ns;
    if (ev.has_tuple() && ev.saddr && ev.daddr) {
      const bool write = ev.direction == Direction::kWrite;
      family = ev.family;
      flags = CC_FLAG_HAS_TUPLE;
      lport = write ? ev.sport : ev.dport;
      rport = write ? ev.dport : ev.sport;
      std::memcpy(laddr, write ? ev.saddr : ev.daddr, 16);
      std::memcpy(raddr, write ? ev.daddr : ev.saddr, 16);
    }
  }

  // An event about this connection in direction `side`, at `boot_ns`.
  Event event(int side, uint64_t boot_ns) const {
    Event e;
    const bool write = side == 0;
    e.direction = write ? Direction::kWrite : Direction::kRead;
    e.boot_ns = boot_ns ? boot_ns : last_boot_ns;
    e.wall_ns = uint64_t(int64_t(e.boot_ns) + wall_offset);
    e.pid = pid, e.tid = tid, e.uid = uid, e.fd = fd, e.cgroup_id = cgroup_id, e.conn_id = conn_id;
    e.source = seen[side] ? source[side] : source[side ^ 1];
    e.family = family;
    e.flags = flags;
    e.sport = write ? lport : rport;
    e.dport = write ? rport : lport;
    e.saddr = write ? laddr : raddr;
    e.daddr = write ? raddr : laddr;
    e.comm = comm;
    return e;
  }
};

Stage::Stage(EventSink& next, Options opts) : next_(next), opts_(opts) {}
Stage::~Stage() = default;

void Stage::drop_least_recent() {
  auto it = conns_.find(lru_.back());
  give_up(*it->second);
  lru_.pop_back();
  conns_.erase(it);
}

Stage::Conn& Stage::conn_of(const Event& ev, bool* fresh) {
  auto it = conns_.find(ev.conn_id);
  if (it != conns_.end()) {
    lru_.splice(lru_.begin(), lru_, it->second->lru);
    *fresh = false;
    return *it->second;
  }
  if (conns_.size() >= opts_.max_connections && !lru_.empty()) {
    const Conn& victim = *conns_.find(lru_.back())->second;
    if (victim.proto == Conn::Proto::kHttp1 || victim.proto == Conn::Proto::kHttp2)
      counters_.evicted.fetch_add(1, std::memory_order_relaxed);
    drop_least_recent();
  }
  // Connections end without a record (SSL_free is seen only by the
  // kernel side): one idle past Options::idle_ns is given up, the least
  // recently used first, one per new connection.
  if (!lru_.empty() && ev.boot_ns > conns_.find(lru_.back())->second->last_boot_ns + opts_.idle_ns)
    drop_least_recent();
  auto c = std::make_unique<Conn>();
  lru_.push_front(ev.conn_id);
  c->lru = lru_.begin();
  *fresh = true;
  return *conns_.emplace(ev.conn_id, std::move(c)).first->second;
}

void Stage::write(const Event& in) {
  if (in.record_type != CC_REC_DATA || in.payload.empty()) {
    if (!opts_.summary_only) next_.write(in);
    return;
  }
  bool fresh = false;
  Conn& c = conn_of(in, &fresh);
  if (fresh || !(c.flags & CC_FLAG_HAS_TUPLE)) c.learn(in);
  c.last_boot_ns = in.boot_ns;
  const int side = side_of(in);
  c.source[side] = in.source;
  Event ev = in;
  ev.kind = PayloadKind::kData;
  if (c.proto == Conn::Proto::kOther) {
    // Looked at again now and then, at the start of a call: a capture that
    // began inside a long download sees the next request only later.
    if (++c.other_events % kRetryEvery == 0 && in.call_off == 0) {
      c.proto = Conn::Proto::kUnknown;
      c.tries = kMaxTries - 1;
      c.seen[side] = false;
    } else {
      c.next_seq[side] = in.seq + in.payload.size();
      if (!opts_.summary_only) next_.write(ev);
      return;
    }
  }

  // Follow the direction's offsets: skip what was seen already, tell the
  // parser about what was never seen.
  std::span<const uint8_t> bytes = in.payload;
  bool gap_before = false;
  if (c.seen[side]) {
    const uint64_t want = c.next_seq[side];
    if (in.seq > want) {
      gap_before = true;
    } else if (in.seq < want) {
      const uint64_t skip = want - in.seq;
      bytes = skip >= bytes.size() ? std::span<const uint8_t>{} : bytes.subspan(skip);
    }
  }
  c.seen[side] = true;
  c.next_seq[side] = std::max(c.next_seq[side], in.seq + in.payload.size());

  done_.clear();
  ParseState st = ParseState::kNeedsMoreData;  // bytes seen before: nothing new
  if (c.proto == Conn::Proto::kUnknown) {
    if (gap_before) c.probe[side].clear();
    st = bytes.empty() ? ParseState::kInvalid : detect(c, in, bytes);
  } else {
    if (gap_before) gap(c, in, side);
    if (!bytes.empty()) st = feed(c, in, bytes, side);
  }
  // Text output shows a consumed event's bytes as the messages they belong
  // to: bytes skipped by a search (after a gap or an error) are in none.
  const bool searched = c.proto == Conn::Proto::kHttp1 && c.h1[side]->searched();
  ev.consumed = (c.proto == Conn::Proto::kHttp1 || c.proto == Conn::Proto::kHttp2) && !c.websocket &&
                st != ParseState::kInvalid && st != ParseState::kIgnored && !searched;

  if (c.proto == Conn::Proto::kHttp1) {
    ev.kind = c.websocket ? PayloadKind::kWebSocket
              : side == c.request_side ? PayloadKind::kHttp1Request
                                       : PayloadKind::kHttp1Response;
  } else if (c.proto == Conn::Proto::kHttp2) {
    ev.kind = side == c.req_side() ? PayloadKind::kHttp2Request : PayloadKind::kHttp2Response;
  }
  if (!opts_.summary_only) next_.write(ev);
  emit_messages(c);
}

ParseState Stage::detect(Conn& c, const Event& ev, std::span<const uint8_t> bytes) {
  const int side = side_of(ev);
  std::string& probe = c.probe[side];
  if (probe.empty()) c.probe_seq[side] = ev.seq + (ev.payload.size() - bytes.size());
  // The bytes looked at: what this side left undecided, then this chunk
  // (only its first bytes matter for the decision).
  std::string look = probe;
  look.append(reinterpret_cast<const char*>(bytes.data()), std::min(bytes.size(), kProbeMax));
  // Frames are judged on the whole chunk (a call writes whole frames).
  const auto lb = probe.empty() ? bytes : as_bytes(look);
  const bool at_start = c.probe_seq[side] == 0;

  Conn::Proto proto = Conn::Proto::kUnknown;
  bool from_start = at_start;
  bool undecided = false;
  const std::string_view preface = http2::kClientPreface;
  if (at_start && look.size() >= preface.size() && look.compare(0, preface.size(), preface) == 0) {
    proto = Conn::Proto::kHttp2;
    c.request_side = side;
  } else if (at_start && preface.starts_with(look)) {
    undecided = true;
  } else {
    const ParseState rq = http1::looks_like_request(lb);
    const ParseState rs = http1::looks_like_response(lb);
    if (rq == ParseState::kSuccess) {
      proto = Conn::Proto::kHttp1;
      c.request_side = side;
    } else if (rs == ParseState::kSuccess) {
      proto = Conn::Proto::kHttp1;
      c.request_side = side ^ 1;
    } else {
      const ParseState fr = looks_like_frames(lb);
      if (fr == ParseState::kSuccess && at_start && !c.seen[side ^ 1] && !c.held_frames[side] &&
          bytes.size() < kProbeMax) {
        // A server sends its SETTINGS before it reads the client's
        // preface: held until the other side's first bytes say whether
        // the connection is seen from its start.
        c.held_frames[side] = true;
        probe = std::move(look);
        return ParseState::kInvalid;
      } else if (fr == ParseState::kSuccess) {
        // Frames, and no preface on the other side: picked up mid-way (the
        // kernel side counts offsets from the first call it saw, so offset
        // 0 proves nothing); HPACK state is unknown.
        proto = Conn::Proto::kHttp2;
        from_start = false;
      } else if (rq == ParseState::kNeedsMoreData || rs == ParseState::kNeedsMoreData ||
                 fr == ParseState::kNeedsMoreData) {
        undecided = true;
      }
    }
  }

  if (proto == Conn::Proto::kUnknown) {
    if (undecided && bytes.size() + probe.size() < kProbeMax) {
      probe = std::move(look);
      return ParseState::kInvalid;
    }
    probe.clear();
    if (++c.tries >= kMaxTries) {
      c.proto = Conn::Proto::kOther;
      c.probe[0].clear(), c.probe[1].clear();
      c.probe[0].shrink_to_fit(), c.probe[1].shrink_to_fit();
    }
    return ParseState::kInvalid;
  }

  c.proto = proto;
  counters_.connections.fetch_add(1, std::memory_order_relaxed);
  if (proto == Conn::Proto::kHttp1) {
    http1::Limits l;
    l.max_body_bytes = opts_.body_max;
    c.h1[c.request_side] = std::make_unique<http1::Parser>(Kind::kRequest, l);
    c.h1[c.request_side ^ 1] = std::make_unique<http1::Parser>(Kind::kResponse, l);
  } else {
    http2::SessionLimits l;
    l.max_body_bytes = opts_.body_max;
    c.h2 = std::make_unique<http2::Session>(from_start, l);
  }
  // HTTP/2: frames the other side sent first (the server's SETTINGS) go
  // in first; otherwise the other side's undecided bytes are dropped (they
  // were no message start). Then this side's, then the chunk.
  const std::string other = std::move(c.probe[side ^ 1]);
  const std::string held = std::move(probe);
  c.probe[0].clear(), c.probe[1].clear();
  if (proto == Conn::Proto::kHttp2 && c.held_frames[side ^ 1] && !other.empty())
    feed(c, ev, as_bytes(other), side ^ 1);
  if (!held.empty()) feed(c, ev, as_bytes(held), side);
  return feed(c, ev, bytes, side);
}

ParseState Stage::feed(Conn& c, const Event& ev, std::span<const uint8_t> bytes, int side) {
  ParseState st;
  if (c.proto == Conn::Proto::kHttp1) {
    st = c.h1[side]->feed(bytes, ev.boot_ns, done_);
  } else {
    const http2::Session::Counters k0 = c.h2->counters();
    st = c.h2->feed(side, bytes, ev.boot_ns, done_);
    const http2::Session::Counters& k = c.h2->counters();
    auto add = [](std::atomic<uint64_t>& a, uint64_t d) {
      if (d) a.fetch_add(d, std::memory_order_relaxed);
    };
    add(counters_.hpack_unknown, k.hpack_unknown - k0.hpack_unknown);
    add(counters_.parse_errors, k.hpack_errors - k0.hpack_errors);
    add(counters_.evicted, k.streams_evicted - k0.streams_evicted);
  }
  if (st == ParseState::kInvalid) counters_.parse_errors.fetch_add(1, std::memory_order_relaxed);
  return st;
}

void Stage::gap(Conn& c, const Event&, int side) {
  counters_.gaps.fetch_add(1, std::memory_order_relaxed);
  if (c.proto == Conn::Proto::kHttp1) {
    c.h1[side]->gap(done_);
    // HTTP/1 pairs by order: a response lost whole would shift every later
    // pair. Requests still waiting behind the one the next response most
    // likely answers (the newest) had their responses in the lost bytes.
    if (side != c.req_side()) {
      emit_messages(c);  // what the gap gave up pairs first
      while (c.waiting.size() > 1) {
        counters_.unpaired_gap.fetch_add(1, std::memory_order_relaxed);
        emit_exchange(c, &c.waiting.front(), nullptr);
        c.waiting.pop_front();
      }
    }
  } else if (c.proto == Conn::Proto::kHttp2) {
    c.h2->gap(side, done_);
  }
}

void Stage::emit_messages(Conn& c) {
  for (Message& m : done_) {
    // Bodies are decoded for display only, and only when shown.
    if ((!opts_.summary_only || opts_.keep_bodies) && !m.body.empty() && !m.header("content-encoding").empty())
      m.shown = decode_body(m.header("content-encoding"), m.body, opts_.body_max);
    if (m.body_cut) counters_.bodies_cut.fetch_add(1, std::memory_order_relaxed);
    if (m.incomplete) counters_.incomplete.fetch_add(1, std::memory_order_relaxed);
    counters_.messages.fetch_add(1, std::memory_order_relaxed);
    if (m.version == Version::kHttp2 && c.h2 && !c.h2->request_side() && m.kind == Kind::kRequest &&
        c.streams.count(m.stream_id)) {
      // Picked up mid-way before the roles were known: a second message
      // on the stream is the response.
      m.kind = Kind::kResponse;
    }
    const int side = m.kind == Kind::kRequest ? c.req_side() : c.req_side() ^ 1;
    if (c.proto == Conn::Proto::kHttp1) on_http1_message(c, m);
    if (!opts_.summary_only) {
      Event me = c.event(side, m.last_ns);
      me.record_type = kRecHttpMessage;
      me.kind = m.version == Version::kHttp2 ? (m.kind == Kind::kRequest ? PayloadKind::kHttp2Request
                                                                          : PayloadKind::kHttp2Response)
                                             : (m.kind == Kind::kRequest ? PayloadKind::kHttp1Request
                                                                          : PayloadKind::kHttp1Response);
      me.http = &m;
      next_.write(me);
    }
    if (!opts_.keep_bodies && m.kind == Kind::kRequest) {
      // Waiting for its response, a request needs its sizes, not its body.
      std::string().swap(m.body);
      m.shown = {};
    }
    pair(c, m);
  }
  done_.clear();
}

// HTTP/1 requests tell the response parser what to expect (HEAD,
// CONNECT); a response settles an upgrade the request asked for: 101 (or
// a 2xx to CONNECT) switches the connection away from HTTP, anything else
// turns it down and the request side is HTTP again.
void Stage::on_http1_message(Conn& c, const Message& m) {
  const int rq = c.req_side();
  if (m.kind == Kind::kRequest) {
    c.h1[rq ^ 1]->expect_response(m.method == "HEAD", m.method == "CONNECT");
    return;
  }
  if (m.status >= 100 && m.status < 200 && m.status != 101) return;
  const bool connect = !c.waiting.empty() && c.waiting.front().method == "CONNECT";
  const bool switched = m.status == 101 || (connect && m.status >= 200 && m.status < 300);
  if (!switched) c.h1[rq]->decline_upgrade();
  if (m.status == 101 && is_websocket_upgrade(m)) c.websocket = true;
}

void Stage::pair(Conn& c, Message& m) {
  if (m.kind == Kind::kRequest) {
    if (m.version == Version::kHttp2) {
      if (auto e = c.early_streams.find(m.stream_id); e != c.early_streams.end()) {
        emit_exchange(c, &m, &e->second);
        c.early_streams.erase(e);
        return;
      }
      if (auto old = c.streams.find(m.stream_id); old != c.streams.end()) {
        emit_exchange(c, &old->second, nullptr);  // never overwritten unreported
        c.streams.erase(old);
      }
      if (c.streams.size() >= opts_.max_pending) {
        counters_.evicted.fetch_add(1, std::memory_order_relaxed);
        auto oldest = c.streams.begin();
        emit_exchange(c, &oldest->second, nullptr);
        c.streams.erase(oldest);
      }
      c.streams.emplace(m.stream_id, std::move(m));
    } else {
      if (!c.early.empty()) {
        emit_exchange(c, &m, &c.early.front());
        c.early.pop_front();
        return;
      }
      if (c.waiting.size() >= opts_.max_pending) {
        counters_.evicted.fetch_add(1, std::memory_order_relaxed);
        emit_exchange(c, &c.waiting.front(), nullptr);
        c.waiting.pop_front();
      }
      c.waiting.push_back(std::move(m));
    }
    return;
  }
  // An interim response (100 Continue, 103 Early Hints) answers nothing yet.
  if (m.status >= 100 && m.status < 200 && m.status != 101) return;
  if (m.version == Version::kHttp2) {
    auto it = c.streams.find(m.stream_id);
    if (it != c.streams.end()) {
      emit_exchange(c, &it->second, &m);
      c.streams.erase(it);
      return;
    }
    // The request may still be in progress (an early answer to an upload).
    if (c.early_streams.size() >= opts_.max_pending) {
      counters_.evicted.fetch_add(1, std::memory_order_relaxed);
      auto oldest = c.early_streams.begin();
      emit_exchange(c, nullptr, &oldest->second);
      c.early_streams.erase(oldest);
    }
    c.early_streams.emplace(m.stream_id, std::move(m));
    return;
  }
  if (!c.waiting.empty()) {
    emit_exchange(c, &c.waiting.front(), &m);
    c.waiting.pop_front();
    return;
  }
  if (c.h1[c.req_side()]->in_message() && c.early.size() < opts_.max_pending) {
    c.early.push_back(std::move(m));  // answered before the request ended
    return;
  }
  emit_exchange(c, nullptr, &m);
}

void Stage::emit_exchange(Conn& c, const Message* req, const Message* resp) {
  counters_.exchanges.fetch_add(1, std::memory_order_relaxed);
  if (!req || !resp) counters_.unpaired.fetch_add(1, std::memory_order_relaxed);
  Exchange x;
  x.request = req;
  x.response = resp;
  if (req && resp && req->last_ns && resp->first_ns) {
    // Clamp: a response's first byte seen before the request's last (the
    // two directions come from different calls) is no negative latency.
    x.wait_ns = std::max<int64_t>(0, int64_t(resp->first_ns) - int64_t(req->last_ns));
    x.total_ns = std::max<int64_t>(x.wait_ns, int64_t(resp->last_ns) - int64_t(req->last_ns));
  }
  const int resp_side = c.req_side() ^ 1;
  Event e = c.event(resp ? resp_side : resp_side ^ 1, resp ? resp->last_ns : req ? req->last_ns : 0);
  e.record_type = kRecHttpExchange;
  e.kind = PayloadKind::kHttpExchange;
  e.exchange = &x;
  next_.write(e);
}

void Stage::give_up(Conn& c) {
  done_.clear();
  if (c.proto == Conn::Proto::kHttp1) {
    for (auto& p : c.h1)
      if (p) p->gap(done_);
  } else if (c.proto == Conn::Proto::kHttp2) {
    c.h2->finish(done_);
  }
  emit_messages(c);
  for (auto& r : c.waiting) emit_exchange(c, &r, nullptr);
  c.waiting.clear();
  for (auto& [id, r] : c.streams) emit_exchange(c, &r, nullptr);
  c.streams.clear();
  for (auto& r : c.early) emit_exchange(c, nullptr, &r);
  c.early.clear();
  for (auto& [id, r] : c.early_streams) emit_exchange(c, nullptr, &r);
  c.early_streams.clear();
}

void Stage::finish() {
  for (auto& [id, c] : conns_) give_up(*c);
  conns_.clear();
  lru_.clear();
}

HttpCounters Stage::snapshot() const {
  auto v = [](const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); };
  const Counters& k = counters_;
  return {v(k.connections), v(k.messages),     v(k.incomplete),    v(k.bodies_cut), v(k.exchanges), v(k.unpaired),
          v(k.unpaired_gap), v(k.parse_errors), v(k.hpack_unknown), v(k.gaps),       v(k.evicted)};
}

std::string Stage::summary_line() const {
  const HttpCounters k = snapshot();
  return fmt::format(
      "http: {} connections, {} messages ({} incomplete, {} bodies cut to --http-body-max), {} exchanges ({} with a "
      "half missing, {} of them requests whose response was in lost bytes), {} parse errors, {} header blocks "
      "undecodable (HPACK state from before capture), {} stream gaps, {} given up at the bounds",
      k.connections, k.messages, k.incomplete, k.bodies_cut, k.exchanges, k.unpaired, k.unpaired_gap, k.parse_errors,
      k.hpack_unknown, k.gaps, k.evicted);
}

}  // namespace clearcap::http
