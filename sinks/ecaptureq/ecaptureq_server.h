// The eCaptureQ WebSocket event server (../shared/spec/ecaptureq.md):
// `--ecaptureq ws://HOST:PORT/`. Every message is one binary frame holding
// one protobuf LogEntry: a heartbeat on connect and every 15 s, clearcap's own
// log lines, and events. The last 128 log lines and events are replayed, in
// order, to each new client before live messages.
//
// Hand-over from the processor: write() copies the event (header fields,
// addresses, comm, the payload after truncation) into a slot of a fixed pool
// and passes it through a bounded SPSC queue to the io thread, which builds
// and serializes the LogEntry and wakes through an eventfd only when it was
// idle. Measured (bench/bench_ecaptureq.cpp, 2-vCPU VM): serializing a
// LogEntry costs ~0.3 us for a 256-byte event and ~0.7 us for 16 KB, the copy
// ~15 ns and ~130 ns; the processor is the pipeline's one serial stage, so it
// copies and the io thread encodes. No lock, no allocation once the slots
// have grown to their working size, never a wait: with no free slot the event
// is dropped for this output and counted (dropped_events of "<url>").
//
// Slow clients: each client has a bounded queue (messages and bytes); what
// does not fit is dropped for that client, counted (dropped_events of
// "<url> clients"), and the client is told with a PROCESS_LOG line as soon as
// its queue has room again.
//
// Access (core/peer_access.h): without a token only root, the user who
// started clearcap and --allow-uid may connect (others get 403 right after
// accept); a cross-origin upgrade (an Origin that is not this server) and,
// without a token, a foreign Host get 403. At most max_connections are
// held, max_per_peer per user or address (beyond: 503). accept() failing
// (EMFILE) pauses 100 ms instead of spinning.
//
// Thread: start(), stop() and the destructor for the owner; write(), flush()
// and set_format() for the processor thread only; post_log(),
// collect_stats() and the counters for any thread; everything else runs on
// the server's own io thread.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/result.h"
#include "sinks/event_sink.h"

namespace clearcap {

// ws://HOST:PORT/PATH. HOST may be a name, an IPv4 address or [IPv6];
// empty = 127.0.0.1. PORT 0 = any free port.
struct WsUrl {
  std::string host;
  uint16_t port = 0;
  std::string path = "/";
};
Result<WsUrl> parse_ws_url(std::string_view url);

class EcaptureqServer : public EventSink {
 public:
  struct Options {
    WsUrl url;
    std::string token;                        // non-empty: required as Bearer token or ?token=
    std::vector<uid_t> allow_uids;            // --allow-uid (PeerAccess)
    size_t max_connections = 64;
    size_t max_per_peer = 16;
    FormatOptions format;                     // truncate applies to event payloads
    size_t history = 128;                     // messages replayed to a new client
    size_t pool_slots = 1024;                 // processor -> io thread hand-over (each grows to its largest message)
    size_t client_queue_messages = 8192;      // per client
    size_t client_queue_bytes = 32u << 20;    // per client
    std::chrono::milliseconds heartbeat{15000};
  };

  // Binds and starts the io thread. Errors name the address and the remedy.
  static Result<std::unique_ptr<EcaptureqServer>> start(Options opts);
  ~EcaptureqServer() override;  // stop()
  EcaptureqServer(const EcaptureqServer&) = delete;
  EcaptureqServer& operator=(const EcaptureqServer&) = delete;

  // Owner: sends what is queued (at most `grace`), closes every client with
  // "going away", joins the io thread. Idempotent.
  void stop(std::chrono::milliseconds grace = std::chrono::milliseconds(2000));

  // The URL actually bound (with the real port when 0 was asked for).
  const std::string& url() const { return url_; }

  void write(const Event& ev) override;
  void flush() override;
  void set_format(const FormatOptions& opts) override;
  void collect_stats(std::vector<SinkStats>& out) const override;

  // One line of clearcap's own log, as a PROCESS_LOG message.
  void post_log(std::string line);

  size_t clients() const;
  // Connections refused (peer not allowed, limits) and accept() failures.
  uint64_t refused() const;
  uint64_t accept_errors() const;
  // Slots waiting for the io thread.
  size_t pending() const;

  class Impl;

 private:
  explicit EcaptureqServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
  std::string url_;
};

}  // namespace clearcap
