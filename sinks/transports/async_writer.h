// AsyncWriter: one output destination served by its own writer thread, so
// that a slow or absent destination never slows capture or the other
// outputs.
//
// The processor thread pushes encoded events into a bounded ByteRing
// (preallocated, no allocation or lock per event). When the ring is full the
// whole event is dropped and counted (SinkStats::dropped_events/_bytes). The
// writer thread drains the ring to its Transport; while a network peer is
// away the ring holds what arrives (that is the bounded buffer) and the
// writer reconnects with exponential backoff (initial_backoff doubling up to
// max_backoff). A record whose send failed is counted as dropped. Every
// failed send, whatever the transport, waits out the backoff before the next
// try: a destination that keeps failing (a full disk, a closed stdout) never
// makes the writer spin. A transport closed for good (stdout whose reader
// went away) has what is queued, and all that follows, counted as lost.
//
// Shutdown never reconnects and is bounded: close_events()/stop() give the
// writer drain_timeout, then interrupt a blocked send (repeatedly) and count
// what is left as lost. If the process must end before the writer returns
// (--shutdown-timeout, a second SIGINT), abandon() counts every record still
// held as lost, so that the summary printed just before exiting adds up:
// accepted = delivered + lost after acceptance, for every output.
//
// clearcap's own log lines come from other threads (rarely): push_log()
// takes a mutex and a small bounded queue, kept apart from the event ring
// so that the event path stays single-producer and lock-free. The writer
// sends pending log lines before the events it drains next.
//
// Thread: constructor, start(), close_events(), stop() for the owner; push()/wake() for the
// one producer (the processor thread); push_log(), request_reopen(),
// collect_stats() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <readerwriterqueue/atomicops.h>

#include "sinks/transports/byte_ring.h"
#include "sinks/event_sink.h"
#include "sinks/transports/transport.h"

namespace clearcap {

class AsyncWriter {
 public:
  struct Options {
    size_t queue_bytes = 32u << 20;  // event ring (rounded up to a power of two)
    size_t log_queue_lines = 4096;  // pending log lines
    std::chrono::milliseconds initial_backoff{100};
    std::chrono::milliseconds max_backoff{5000};
    // At stop: how long the writer may keep delivering what is queued (and
    // try to reach an absent peer once more) before counting the rest lost.
    std::chrono::milliseconds drain_timeout{3000};
  };

  AsyncWriter(std::string name, std::unique_ptr<Transport> transport, Options opts);
  ~AsyncWriter();  // stop()
  AsyncWriter(const AsyncWriter&) = delete;
  AsyncWriter& operator=(const AsyncWriter&) = delete;

  void start();
  // Owner, at shutdown once the producer has pushed its last event: the
  // writer delivers the queued events (bounded by drain_timeout), counts what
  // it could not deliver as lost, and returns; log lines keep flowing, so
  // the summary written afterwards (with final counts) still reaches this
  // destination.
  void close_events();
  // close_events() in two halves, so that several writers drain at once.
  void begin_close_events();
  void wait_events_closed();
  // Delivers what is queued (bounded by drain_timeout), closes, joins.
  void stop();
  // Owner, when the process ends without waiting for this writer: the
  // records it still holds count as lost from now on in stats(). The
  // writer thread is left as it is (the process is about to exit).
  void abandon();
  // The destination can never take anything again (stdout closed by its reader).
  bool closed_for_good() const { return transport_->closed_for_good(); }

  // Producer thread: queues one encoded event; false (and counted) when the
  // ring has no room for it.
  bool push(std::string_view record);
  // Producer thread: wake the writer (the pipeline is idle).
  void wake() { sem_.signal(); }
  // Any thread.
  void push_log(std::string_view record);
  // Log lines pushed after this call go to the reopened file.
  void request_reopen();

  const std::string& name() const { return name_; }
  SinkStats stats() const;
  uint64_t delivered_events() const;
  uint64_t connects() const { return connects_.load(std::memory_order_relaxed); }
  bool connected() const { return connected_.load(std::memory_order_relaxed); }

 private:
  void run(std::stop_token st);
  // Sends what is queued; false when the transport failed.
  bool drain_once();
  void count_lost(uint64_t events, uint64_t bytes) {
    dropped_events_.fetch_add(events, std::memory_order_relaxed);
    dropped_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }
  // A record refused at the door (queue full): lost, never accepted.
  void count_rejected(uint64_t bytes) {
    rejected_.fetch_add(1, std::memory_order_relaxed);
    count_lost(1, bytes);
  }
  // Waits until `t` (or a stop or close request), ignoring wake-ups.
  void pause_until(std::chrono::steady_clock::time_point t, const std::stop_token& st);
  // Owner: interrupts the transport every 50 ms until `done()`.
  template <typename Done>
  void interrupt_until(Done done);
  void failed(const Error& e);
  // Writer thread: counts every queued event as lost and forgets it.
  void discard_events();

  std::string name_;
  std::unique_ptr<Transport> transport_;
  Options opts_;
  ByteRing ring_;
  moodycamel::spsc_sema::LightweightSemaphore sem_;
  std::mutex log_mu_;
  std::deque<std::string> logs_;  // guarded by log_mu_
  std::atomic<bool> reopen_{false};
  std::atomic<bool> stopping_{false};
  std::jthread thread_;
  // Writer-thread scratch (grows to the largest batch, then no allocation).
  std::string batch_;
  std::vector<size_t> ends_;
  // Any thread reads (relaxed: plain counters).
  std::atomic<uint64_t> dropped_events_{0}, dropped_bytes_{0}, write_errors_{0}, delivered_{0}, connects_{0};
  std::atomic<uint64_t> accepted_{0}, rejected_{0};
  std::atomic<uint64_t> longest_write_ns_{0};  // written by the writer thread only
  // abandon(): stats frozen with every unsettled record counted lost.
  std::atomic<bool> abandoned_{false};
  SinkStats frozen_;
  uint64_t frozen_delivered_ = 0;
  std::atomic<int> last_errno_{0};
  std::atomic<bool> connected_{false};
  std::atomic<bool> finished_{false};
  std::atomic<bool> close_events_{false};
  std::atomic<int64_t> close_deadline_ns_{0};  // steady_clock, set with close_events_
  std::atomic<bool> events_done_{false};
};

// The EventSink of the outputs: encodes each event once and pushes the bytes
// to every AsyncWriter (fan-out).
// Thread: write()/flush() on the processor thread; collect_stats() any.
class FanoutSink : public EventSink {
 public:
  FanoutSink(std::unique_ptr<Encoder> encoder, std::vector<AsyncWriter*> writers);
  void write(const Event& ev) override;
  void flush() override;
  void set_format(const FormatOptions& opts) override { encoder_->set_options(opts); }
  void collect_stats(std::vector<SinkStats>& out) const override;

 private:
  std::unique_ptr<Encoder> encoder_;
  std::vector<AsyncWriter*> writers_;
  std::string scratch_;
};

}  // namespace clearcap
