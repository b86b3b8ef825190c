// Human-readable form: one header line per event, then the payload as text
// when it is printable, else as a hex dump, then a blank line.
//   2026-11-22T18:44:00.123456789Z curl pid=1234 tid=1234 uid=0 SSL_write write fd=5 127.0.0.1:54321 -> 127.0.0.1:8443 conn=42 seq=0 len=78
#pragma once

#include <string>

#include "sinks/event_sink.h"
#include "sinks/encoders/format_util.h"

namespace clearcap {

class TextEncoder : public Encoder {
 public:
  explicit TextEncoder(FormatOptions opts) : opts_(opts) {}
  void encode(const Event& ev, std::string& out) override;
  void set_options(const FormatOptions& opts) override { opts_ = opts; }

 private:
  FormatOptions opts_;
  TimeFormatter time_;
};

}  // namespace clearcap
