// The processor thread: takes batches from every reader, merges their records
// by kernel timestamp within a bounded window, converts timestamps to wall
// clock, follows stream offsets, and hands each event to the sink.
//
// Ordering: each reader's records are in timestamp order (one ring per CPU);
// the head record of the reader with the smallest timestamp is released when
// every other reader either has records waiting or has promised (watermark)
// that nothing older is still to come — or, failing both, once the record is
// older than the merge window (a stuck reader is not waited for forever).
// An idle source whose promise holds records back is kicked for a fresh one
// rather than waited for until its next timer tick: at full speed the busy
// reader's batch pool would fill first, and its ring after it.
//
// Thread: constructor, start(), join() for the owner; the counters for any
// thread; everything else runs on the processor thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include <readerwriterqueue/atomicops.h>

#include "core/boot_clock.h"
#include "core/batch_source.h"
#include "core/stream_tracker.h"
#include "core/event_sink.h"

namespace clearcap {

class Processor {
 public:
  struct Options {
    uint64_t merge_window_ns = 100'000'000;  // > reader poll period + hand-over slack
    // An idle source is kicked for a fresh promise only once the held
    // record is this old. A fresh promise covers records kPromiseLagNs old
    // at best; kicking as soon as one could cover the held record released
    // only the records of the kick's own round trip each time, so with
    // small hand-overs (a wake-up per record) the release fell behind the
    // producer and pinned every batch of the busy reader until its ring
    // filled (bench/probe_cost ssl/clearcap-wake/16k: 1679 of 30600 records
    // lost in 3 rounds), while kicking at once (0) keeps both threads in a
    // ping-pong of context switches. Half a lag more makes each kick
    // release at least a millisecond of records: no loss there in 3 rounds,
    // and fewer switches than either.
    uint64_t promise_lag_ns = kPromiseLagNs + kPromiseLagNs / 2;
  };

  Processor(std::vector<BatchSource*> sources, EventSink& sink, Options opts,
            moodycamel::spsc_sema::LightweightSemaphore* wake);
  ~Processor();

  void start();
  // Returns once every reader has finished and everything was delivered.
  void join();

  uint64_t events() const { return events_.load(std::memory_order_relaxed); }
  uint64_t payload_bytes() const { return payload_bytes_.load(std::memory_order_relaxed); }
  uint64_t decode_errors() const { return decode_errors_.load(std::memory_order_relaxed); }
  uint64_t gaps() const { return gaps_.load(std::memory_order_relaxed); }
  uint64_t gap_bytes() const { return gap_bytes_.load(std::memory_order_relaxed); }
  uint64_t late_events() const { return late_.load(std::memory_order_relaxed); }
  std::string error() const { return error_; }

  // Any thread: new rendering options; the processor thread hands them to the
  // sink before the next event (one relaxed load per event, no lock).
  void set_format(const FormatOptions& opts);
  FormatOptions format() const;

  // Runs the whole pipeline over the given records, in the calling thread
  // (replay tests and benchmarks): decode, merge-free, convert, deliver.
  void deliver_record(std::span<const uint8_t> record) { deliver<false>(record, 0); }
  // A record replayed from a capture file: its own boot-to-wall offset.
  void deliver_record_at(std::span<const uint8_t> record, int64_t wall_offset) { deliver<true>(record, wall_offset); }

 private:
  struct Input {
    BatchSource* source;
    std::deque<Batch*> batches;
    uint64_t watermark = 0;  // source's promise, read before its queue was drained
    uint64_t kicked_at = ~uint64_t{0};  // watermark when last kicked; a new kick waits for a new promise
    size_t offset = 0;  // of the next record in batches.front()
  };
  void run();
  template <bool kFileClock>
  void deliver(std::span<const uint8_t> record, int64_t wall_offset);
  // Releases what may be released; returns the number of events delivered.
  size_t release(bool force);
  bool head_ts(Input& in, uint64_t* ts);
  void pop_head(Input& in);

  std::vector<Input> inputs_;
  EventSink& sink_;
  Options opts_;
  moodycamel::spsc_sema::LightweightSemaphore* wake_;
  BootClock clock_;
  StreamTracker tracker_;
  uint64_t last_refresh_ns_ = 0;
  uint64_t last_released_ts_ = 0;
  // Processor thread: when the record held back by an idle source's old
  // promise is old enough for a fresh promise to cover it (0 = none); the
  // processor wakes by then to kick.
  uint64_t kick_due_ns_ = 0;
  std::jthread thread_;
  std::string error_;
  // FormatOptions packed in one word (bit 63 = hex, low bits = truncate) so
  // that a change is one atomic store and the per-event check one load.
  static constexpr uint64_t kHexBit = 1ull << 63;
  std::atomic<uint64_t> format_word_{0};
  uint64_t format_seen_ = 0;  // processor thread: the word last handed to the sink
  std::atomic<uint64_t> events_{0}, payload_bytes_{0}, decode_errors_{0}, gaps_{0}, gap_bytes_{0}, late_{0};
};

}  // namespace clearcap
