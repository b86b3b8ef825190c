// Encoders: how the outputs turn one event into bytes. The consumer
// interface (EventSink, SinkStats, FormatOptions) is the engine's, in
// core/event_sink.h.
// Thread: an encoder belongs to one thread (the processor's or an output's
// writer).
#pragma once

#include <string>

#include "core/event_sink.h"

namespace clearcap {

// Turns one event into bytes appended to `out`. Implementations keep no
// per-event heap allocation once `out` has grown to its working size.
class Encoder {
 public:
  virtual ~Encoder() = default;
  virtual void encode(const Event& ev, std::string& out) = 0;
  // New rendering options, applied from the next event on (set at run time
  // through the configuration API).
  virtual void set_options(const FormatOptions& opts) = 0;
};

}  // namespace clearcap
