// The consumer end of the engine: what the processor hands each decoded
// event to. Outputs (sinks/) implement it; so do tests and benchmarks.
// Thread: every method is called from the processor thread only, except
// collect_stats() (see there).
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/event.h"

namespace clearcap {

// How payloads are rendered (shared by all encoders).
struct FormatOptions {
  bool hex = false;       // text: hex dump every payload (default: text when printable)
  size_t truncate = 0;    // 0 = whole payload; else at most this many bytes, marked truncated
};

// Loss and error counters of one output, for the summary and --stats.
struct SinkStats {
  std::string name;             // "stdout", a path, a URL
  uint64_t write_errors = 0;    // failed writes
  uint64_t dropped_bytes = 0;   // encoded bytes that could not be delivered
  uint64_t dropped_events = 0;  // whole events not delivered (slow or absent peer)
  int last_errno = 0;           // of the last failure, 0 if none
  // The longest one write or send to the destination took: why a queue
  // filled (a disk held back by dirty-page writeback, a peer reading slowly).
  uint64_t longest_write_ns = 0;
};

// Writer thread (the only writer of `longest`): keeps the longest write seen.
inline void note_write_time(std::atomic<uint64_t>& longest, std::chrono::nanoseconds took) {
  const auto ns = static_cast<uint64_t>(took.count());
  if (ns > longest.load(std::memory_order_relaxed)) longest.store(ns, std::memory_order_relaxed);
}

class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void write(const Event& ev) = 0;
  // Push buffered bytes to the destination (called when the pipeline is idle
  // and at shutdown).
  virtual void flush() = 0;
  // New rendering options (truncate, hex) from the next event on. The
  // processor calls it between events when they were changed at run time.
  // Sinks that render nothing themselves (tests, counters) keep the default.
  virtual void set_format(const FormatOptions& /*opts*/) {}
  // Any thread (counters are read while the processor writes): appends one
  // entry per destination behind this sink.
  virtual void collect_stats(std::vector<SinkStats>& out) const = 0;
};

}  // namespace clearcap
