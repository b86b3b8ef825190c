#include "control/status_text.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "control/remote_control.h"
#include "core/prometheus_text.h"

namespace clearcap {

std::string metrics_text(const Counters& t, const LiveGauges& g) {
  PrometheusText p;
  p.family("clearcap_info", "gauge", "The module this clearcap runs (label module); always 1.");
  p.sample("clearcap_info", {{"module", g.module}}, uint64_t{1});
  p.family("clearcap_events_total", "counter", "Events delivered to the outputs.");
  p.sample("clearcap_events_total", t.events);
  p.family("clearcap_payload_bytes_total", "counter", "Plaintext bytes delivered to the outputs.");
  p.sample("clearcap_payload_bytes_total", t.payload_bytes);
  p.family("clearcap_bpf_records_total", "counter", "Records the BPF programs wrote to the rings.");
  p.sample("clearcap_bpf_records_total", t.bpf[CC_STAT_EVENTS]);
  metrics_losses(p, t);
  p.family("clearcap_filtered_calls_total", "counter", "Library calls skipped by the pid/uid/cgroup filters.");
  p.sample("clearcap_filtered_calls_total", t.bpf[CC_STAT_FILTERED]);
  p.family("clearcap_events_without_fd_total", "counter", "Events whose socket was not known (no addresses).");
  p.sample("clearcap_events_without_fd_total", t.bpf[CC_STAT_NO_FD]);
  p.family("clearcap_stream_gaps_total", "counter", "Jumps in a stream's byte offset seen in the output.");
  p.sample("clearcap_stream_gaps_total", t.gaps);
  p.family("clearcap_stream_gap_bytes_total", "counter", "Bytes missing in those jumps.");
  p.sample("clearcap_stream_gap_bytes_total", t.gap_bytes);
  p.family("clearcap_late_events_total", "counter", "Events released after a later one (merge window too short).");
  p.sample("clearcap_late_events_total", t.late);
  p.family("clearcap_reader_stalls_total", "counter", "Times a reader waited for a free batch.");
  p.sample("clearcap_reader_stalls_total", t.stalls);
  p.family("clearcap_output_write_errors_total", "counter", "Failed writes, per output.");
  for (const auto& o : t.outputs) p.sample("clearcap_output_write_errors_total", {{"output", o.name}}, o.write_errors);
  p.family("clearcap_output_dropped_events_total", "counter", "Events (messages) not delivered, per output.");
  for (const auto& o : t.outputs)
    p.sample("clearcap_output_dropped_events_total", {{"output", o.name}}, o.dropped_events);
  p.family("clearcap_output_dropped_bytes_total", "counter", "Bytes not delivered, per output.");
  for (const auto& o : t.outputs) p.sample("clearcap_output_dropped_bytes_total", {{"output", o.name}}, o.dropped_bytes);
  p.family("clearcap_reader_queue_batches", "gauge", "Batches waiting for the processor, per reader.");
  for (const auto& [id, batches] : g.reader_queues)
    p.sample("clearcap_reader_queue_batches", {{"reader", std::to_string(id)}}, batches);
  if (g.ecaptureq) {
    p.family("clearcap_ecaptureq_pending_messages", "gauge", "Events waiting for the eCaptureQ server thread.");
    p.sample("clearcap_ecaptureq_pending_messages", g.ecaptureq_pending);
    p.family("clearcap_ecaptureq_clients", "gauge", "Connected eCaptureQ WebSocket clients.");
    p.sample("clearcap_ecaptureq_clients", g.ecaptureq_clients);
  }
  p.family("clearcap_uptime_seconds", "gauge", "Seconds since the capture started.");
  p.sample("clearcap_uptime_seconds", {}, g.uptime_s);
  return p.text();
}

std::string counters_json(const Counters& t) {
  std::vector<std::string> outputs;
  for (const auto& o : t.outputs)
    outputs.push_back(fmt::format(R"({{"name":"{}","write_errors":{},"dropped_events":{},"dropped_bytes":{}}})",
                                  json_escape_text(o.name), o.write_errors, o.dropped_events, o.dropped_bytes));
  return fmt::format(R"({{"events":{},"payload_bytes":{},{},"filtered_calls":{},"stream_gaps":{},"outputs":[{}]}})",
                     t.events, t.payload_bytes, losses_json(t), t.bpf[CC_STAT_FILTERED], t.gaps,
                     fmt::join(outputs, ","));
}

}  // namespace clearcap
