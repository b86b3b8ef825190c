// The outputs of one clearcap run, built from the command line:
// where events go (--eventaddr, repeatable: fan-out), where clearcap's own
// log goes (-l/--logaddr), in which format, with which file rotation.
//
// Resolution (spec/cli.md, DESIGN: the summary stays visible):
//   events: every --eventaddr; else (without -w) the --logaddr destination,
//           else stdout. With -w and no --eventaddr, events go only to the
//           capture file (OutputSet owns both).
//   log:    the --logaddr destination; else stderr (plain lines, as always).
//   With --logaddr, the ready line, --stats lines, errors and the summary
//   are also printed on stderr, so an interactive user still sees them;
//   debug details go to the log destination only.
// A destination named twice (log and events both to one file) is opened
// once: its lines and events are interleaved in one stream.
//
// Thread: create()/close_events()/stop() for the main thread; sink() is
// driven by the processor thread; log()/console()/reopen()/collect_stats()
// from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/result.h"
#include "sinks/transports/async_writer.h"
#include "sinks/ecaptureq/ecaptureq_convert.h"
#include "sinks/event_sink.h"
#include "sinks/encoders/json_encoder.h"

namespace clearcap {

struct OutputOptions {
  std::string format = "text";  // text | json | proto
  bool hex = false;
  uint64_t tsize = 0;
  std::vector<std::string> eventaddrs;  // empty: the log destination, else stdout
  std::optional<std::string> logaddr;   // none: stderr
  uint64_t rotate_mb = 0;               // --eventroratesize
  uint64_t rotate_seconds = 0;          // --eventroratetime
  unsigned rotate_keep = 0;             // --rotate-keep (0 = keep all)
  mode_t file_mode = 0600;              // --file-mode: every file clearcap creates (output_file.h)
  uint64_t queue_mb = 32;               // per-output queue (--output-queue-mb)
  // At shutdown, how long each output may keep delivering what it holds
  // (all at once); from --shutdown-timeout, leaving room for the rest.
  std::chrono::milliseconds drain_timeout{3000};
  bool events_elsewhere = false;        // -w: no default event destination
  // The protocol stage (proto/http/stage.h) in front of the event outputs.
  bool http = true;                     // --no-http: off
  bool http_summary = false;            // --http-summary
  uint64_t http_body_max = 64 * 1024;   // --http-body-max
};

class Outputs {
 public:
  static Result<std::unique_ptr<Outputs>> create(const OutputOptions& opts);
  ~Outputs();

  EventSink& sink() { return *sink_; }
  bool has_event_outputs() const { return !event_names_.empty(); }
  // One log line (no "clearcap: " prefix, no newline).
  void log(std::string_view line);
  // A line the user must see: logged, and on stderr when the log goes elsewhere.
  void console(std::string_view line);
  // SIGHUP: reopen every file.
  void reopen();
  // At shutdown, after the last event was handed over (see AsyncWriter):
  // every writer drains at once, each bounded by its drain timeout.
  void close_events();
  void stop();
  // The process ends without waiting for the writers (AsyncWriter::abandon).
  void abandon();
  // The name of a destination that can never take anything again (stdout
  // whose reader closed the pipe), or empty.
  std::string closed_for_good() const;
  // SinkStats of every destination (events and log).
  void collect_stats(std::vector<SinkStats>& out) const;
  // "events -> a, b; log -> c" for the ready line.
  std::string describe() const;
  // Per destination: connects made (network peers), events delivered.
  struct Extra {
    std::string name;
    bool network;
    uint64_t connects;
    uint64_t delivered;
  };
  std::vector<Extra> extras() const;

 private:
  Outputs() = default;
  void encode_log(std::string_view line, std::string& out);

  OutputOptions opts_;
  std::vector<std::unique_ptr<AsyncWriter>> writers_;
  std::vector<bool> network_;
  std::unique_ptr<FanoutSink> sink_;
  std::vector<AsyncWriter*> log_writers_;  // empty: stderr
  std::vector<std::string> event_names_, log_names_;
  std::mutex log_mu_;  // log encoding state below
  JsonEncoder json_log_{FormatOptions{}};
  ecaptureq::LogEntry log_entry_;
  std::string log_buf_;
};

}  // namespace clearcap
