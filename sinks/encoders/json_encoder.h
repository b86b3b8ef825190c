// JSON lines: one object per event, fields in a fixed order (see
// /work/shared/spec/cli.md "Output formats"). Every line parses with a strict
// JSON parser: strings are escaped, and a payload that is not valid UTF-8 is
// emitted as "payload_b64" instead of "payload".
#pragma once

#include <string>

#include "sinks/event_sink.h"
#include "sinks/encoders/format_util.h"

namespace clearcap {

class JsonEncoder : public Encoder {
 public:
  explicit JsonEncoder(FormatOptions opts) : opts_(opts) {}
  void encode(const Event& ev, std::string& out) override;
  // One line of clearcap's own log in the same stream:
  // {"time":"...","ts_ns":N,"module":"clearcap","log":"<message>"}
  // (no "type": readers tell log lines from events by the "log" key).
  void encode_log(uint64_t wall_ns, std::string_view message, std::string& out);
  void set_options(const FormatOptions& opts) override { opts_ = opts; }

 private:
  FormatOptions opts_;
  TimeFormatter time_;
};

}  // namespace clearcap
