// Every loss clearcap counts, described once. The summary, --stats, /metrics
// and /status are rendered from this table and one snapshot, so their cause
// lists cannot drift apart, and the headline total (`losses:`) is the sum of
// every row: kernel, reader, processor and every output.
// Thread: value types and pure functions; a snapshot belongs to its caller.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "clearcap_abi.h"
#include "core/prometheus_text.h"

namespace clearcap {

// Where the kernel side can lose data: one row per cause, with the BPF
// counter (enum cc_stat) of what was lost and, where known, of its bytes.
struct KernelLossCause {
  const char* name;  // cause label in /metrics and /status
  const char* text;  // summary wording
  const char* unit;  // what the count counts
  int records;       // enum cc_stat
  int bytes;         // enum cc_stat, -1 = not known
};
std::span<const KernelLossCause> kernel_loss_causes();

// One output's delivery counters (a file, stdout, a network peer, the
// capture file, the key log, the eCaptureQ server's pool and clients).
struct OutputCounters {
  std::string name;
  uint64_t write_errors = 0;
  uint64_t dropped_events = 0;  // events (messages) not delivered: a loss
  uint64_t dropped_bytes = 0;
  int last_errno = 0;
  uint64_t longest_write_ns = 0;  // SinkStats::longest_write_ns
};

// The protocol stage's counters (proto/http/stage.h), when it runs.
struct HttpCounters {
  uint64_t connections = 0, messages = 0, incomplete = 0, bodies_cut = 0, exchanges = 0, unpaired = 0,
           unpaired_gap = 0, parse_errors = 0, hpack_unknown = 0, gaps = 0, evicted = 0;
};

// One snapshot of every counter.
struct Counters {
  std::array<uint64_t, CC_STAT__COUNT> bpf{};
  uint64_t events = 0, payload_bytes = 0;
  uint64_t oversize = 0;       // reader: records larger than a batch (lost)
  uint64_t decode_errors = 0;  // processor: undecodable records (lost)
  uint64_t gaps = 0, gap_bytes = 0, late = 0, stalls = 0;
  // The most bytes a ring held when its reader came to it, and the ring
  // size: a peak near the size says the readers were late (records lost to
  // a full ring, or nearly), so --mapsize or the machine's load is the
  // place to look. 0 when the source has no rings (capture files).
  uint64_t ring_peak_fill = 0, ring_bytes = 0;
  // TargetWatch: library files found after start, hooked then / not hooked
  // (their plaintext is not captured: named in the log).
  uint64_t targets_attached_later = 0, targets_not_attached = 0;
  std::vector<OutputCounters> outputs;
  HttpCounters http;

  // Every loss row, kernel causes in table order, then reader, processor
  // and one row per output. `output` is empty except on output rows.
  struct Loss {
    std::string cause;
    std::string output;
    std::string text;
    std::string unit;
    uint64_t count = 0;
    bool has_bytes = false;
    uint64_t bytes = 0;
  };
  std::vector<Loss> losses() const;
  uint64_t lost() const;        // sum of every row's count
  uint64_t lost_bytes() const;  // sum of the bytes that are known
};

// Every counter that is not a loss, once: /metrics renders each as the
// family clearcap_<name>_total with this help, /status as "<name>": value.
struct CounterInfo {
  const char* name;
  const char* help;
  uint64_t (*value)(const Counters&);
};
std::span<const CounterInfo> activity_counters();

// The summary's loss lines: "losses: N (B bytes known lost)", then one line
// per cause (rows of zero included, so a reader knows what was watched).
std::vector<std::string> summary_loss_lines(const Counters& c);
// The summary's lines about the pipeline: events, every loss (above),
// stream gaps, each output's delivery, fd-less events, filters, stalls.
// `extra` (record-file lines: keys, packets) follows the losses.
std::vector<std::string> summary_lines(const Counters& c, double seconds, const std::vector<std::string>& extra);
// The --stats line: totals, the event rate since `prev`, and the non-zero
// causes.
std::string stats_line(const Counters& now, const Counters& prev, double interval_s);
// /metrics: clearcap_lost_records_total and clearcap_lost_bytes_total, one
// sample per row (cause label, and output label on output rows).
void metrics_losses(PrometheusText& p, const Counters& c);
// /status: "lost_records":N,"lost_bytes":B,"lost_by_cause":{...} (no braces
// around: a fragment of the counters object).
std::string losses_json(const Counters& c);

}  // namespace clearcap
