// Builds the event output chain from the command line.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/result.h"
#include "sinks/event_sink.h"

namespace clearcap {

struct OutputOptions {
  std::string format = "text";  // text | json
  bool hex = false;
  uint64_t tsize = 0;
};

Result<std::unique_ptr<EventSink>> make_event_output(const OutputOptions& opts);

}  // namespace clearcap
