// The protocol stage: between the processor and the event outputs, on the
// processor thread. Per connection (conn_id: one library object in one
// process, both directions) it follows each direction's byte stream by its
// offsets, detects the protocol - an HTTP/1.x request or status line, the
// HTTP/2 client preface, or a run of HTTP/2 frames when the connection was
// picked up mid-way - and parses it (proto/http1, proto/http2). Data events
// pass through with their kind set (http1_request, http2_response, ...:
// decided by the connection's protocol and the direction's role, never
// guessed from a prefix); each completed message follows as an event of
// its own (kRecHttpMessage), and each request paired with its response as
// an exchange (kRecHttpExchange).
//
// A gap in a direction's offsets (bytes lost or not captured) is told to
// that direction's parser, which gives up the message in progress (reported
// as incomplete) and finds the next message start: a gap never corrupts the
// next message. Overlapping bytes (seen twice) are skipped.
//
// Bounded: at most Options::max_connections connections (the least recently
// used is given up: its messages and unpaired requests reported as
// incomplete, counted), at most Options::max_pending requests awaiting
// their response per connection (the oldest is reported without one,
// counted), bodies kept up to Options::body_max (the rest counted).
// Connections whose first bytes are no HTTP cost one hash lookup per event
// from then on.
//
// Thread: the EventSink calls and finish() on the processor thread (or the
// owner's, before and after it runs); counters() from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/counters.h"
#include "core/event_sink.h"
#include "proto/http/message.h"

namespace clearcap::http {

class Stage : public EventSink {
 public:
  struct Options {
    bool summary_only = false;  // --http-summary: only exchanges go on
    size_t body_max = 64 * 1024;  // --http-body-max: body bytes kept and shown per message
    size_t max_connections = 16384;
    size_t max_pending = 128;
    // A connection without an event for this long is given up (its end is
    // not seen: libraries free their objects without a record).
    uint64_t idle_ns = 120'000'000'000;
    // Keep (and decode) the bodies of requests waiting for their response
    // even with summary_only (HAR shows both bodies with the exchange);
    // otherwise only the message events show bodies.
    bool keep_bodies = false;
  };

  Stage(EventSink& next, Options opts);
  ~Stage() override;

  void write(const Event& ev) override;
  void flush() override { next_.flush(); }
  void set_format(const FormatOptions& opts) override { next_.set_format(opts); }
  void collect_stats(std::vector<SinkStats>&) const override {}

  // Capture ends: every message in progress and every request still
  // waiting for its response is reported (incomplete / unpaired).
  void finish();

  struct Counters {
    std::atomic<uint64_t> connections{0};       // connections recognised as HTTP
    std::atomic<uint64_t> messages{0};          // messages reported (incomplete ones included)
    std::atomic<uint64_t> incomplete{0};        // messages reported incomplete
    std::atomic<uint64_t> exchanges{0};         // exchanges reported (unpaired ones included)
    std::atomic<uint64_t> unpaired{0};          // exchanges with a half missing
    std::atomic<uint64_t> unpaired_gap{0};      // of them: requests whose response was in lost bytes (HTTP/1)
    std::atomic<uint64_t> parse_errors{0};      // HTTP/1 parse errors, HTTP/2 framing and HPACK errors
    std::atomic<uint64_t> hpack_unknown{0};     // HTTP/2 header blocks that needed state from before capture
    std::atomic<uint64_t> gaps{0};              // stream gaps told to a parser
    std::atomic<uint64_t> evicted{0};           // connections and pending requests given up at the bounds
    std::atomic<uint64_t> bodies_cut{0};        // bodies longer than body_max (shown cut)
  };
  const Counters& counters() const { return counters_; }
  // Any thread: the counters as plain numbers (/metrics, /status, the summary).
  HttpCounters snapshot() const;
  // "http: N exchanges (M unpaired), ..." for the summary.
  std::string summary_line() const;

 private:
  struct Conn;
  using Lru = std::list<uint64_t>;
  Conn& conn_of(const Event& ev, bool* fresh);
  // Both return what the parser said about the bytes (kInvalid: not
  // understood, or the connection's protocol is not decided yet).
  ParseState detect(Conn& c, const Event& ev, std::span<const uint8_t> bytes);
  ParseState feed(Conn& c, const Event& ev, std::span<const uint8_t> bytes, int side);
  void gap(Conn& c, const Event& ev, int side);
  // Reports the messages in done_: each as an event, then pairs it.
  void emit_messages(Conn& c);
  void emit_exchange(Conn& c, const Message* req, const Message* resp);
  void pair(Conn& c, Message& m);
  void on_http1_message(Conn& c, const Message& m);
  // Every message in progress and request waiting, reported (eviction, end).
  void give_up(Conn& c);
  // The least recently used connection, given up and forgotten.
  void drop_least_recent();

  EventSink& next_;
  Options opts_;
  std::unordered_map<uint64_t, std::unique_ptr<Conn>> conns_;
  Lru lru_;  // front = most recently used
  std::vector<Message> done_;  // reused: messages completed by one event
  Counters counters_;
};

}  // namespace clearcap::http
