// Sinks receive decoded events from the processor thread.
// Thread: every method is called from the processor thread only.
#pragma once

#include <cstddef>
#include <string>

#include "core/event.h"

namespace clearcap {

// How payloads are rendered (shared by all encoders).
struct FormatOptions {
  bool hex = false;       // text: hex dump every payload (default: text when printable)
  size_t truncate = 0;    // 0 = whole payload; else at most this many bytes, marked truncated
};

// Turns one event into bytes appended to `out`. Implementations keep no
// per-event heap allocation once `out` has grown to its working size.
class Encoder {
 public:
  virtual ~Encoder() = default;
  virtual void encode(const Event& ev, std::string& out) = 0;
};

class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void write(const Event& ev) = 0;
  // Push buffered bytes to the destination (called when the pipeline is idle
  // and at shutdown).
  virtual void flush() = 0;
};

}  // namespace clearcap
