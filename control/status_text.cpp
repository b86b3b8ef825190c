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
  for (const auto& c : activity_counters()) {
    const std::string name = fmt::format("clearcap_{}_total", c.name);
    p.family(name, "counter", c.help);
    p.sample(name, c.value(t));
  }
  metrics_losses(p, t);
  p.family("clearcap_output_write_errors_total", "counter", "Failed writes, per output.");
  for (const auto& o : t.outputs) p.sample("clearcap_output_write_errors_total", {{"output", o.name}}, o.write_errors);
  p.family("clearcap_output_dropped_events_total", "counter", "Events (messages) not delivered, per output.");
  for (const auto& o : t.outputs)
    p.sample("clearcap_output_dropped_events_total", {{"output", o.name}}, o.dropped_events);
  p.family("clearcap_output_dropped_bytes_total", "counter", "Bytes not delivered, per output.");
  for (const auto& o : t.outputs) p.sample("clearcap_output_dropped_bytes_total", {{"output", o.name}}, o.dropped_bytes);
  p.family("clearcap_output_longest_write_seconds", "gauge",
           "The longest one write or send took, per output: a destination that holds writes this long fills its "
           "queue.");
  for (const auto& o : t.outputs)
    p.sample("clearcap_output_longest_write_seconds", {{"output", o.name}}, static_cast<double>(o.longest_write_ns) / 1e9);
  p.family("clearcap_ring_peak_fill_ratio", "gauge",
           "The most a ring held when its reader came to it, as a share of its size: near 1, the readers were late "
           "and records were (or nearly were) lost to a full ring.");
  p.sample("clearcap_ring_peak_fill_ratio", {},
           t.ring_bytes ? static_cast<double>(t.ring_peak_fill) / static_cast<double>(t.ring_bytes) : 0.0);
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
    outputs.push_back(fmt::format(
        R"({{"name":"{}","write_errors":{},"dropped_events":{},"dropped_bytes":{},"longest_write_ns":{}}})",
        json_escape_text(o.name), o.write_errors, o.dropped_events, o.dropped_bytes, o.longest_write_ns));
  std::string out = "{";
  for (const auto& c : activity_counters()) out += fmt::format(R"("{}":{},)", c.name, c.value(t));
  out += fmt::format(R"("ring_bytes":{},"ring_peak_fill_bytes":{},)", t.ring_bytes, t.ring_peak_fill);
  return out + fmt::format(R"({},"outputs":[{}]}})", losses_json(t), fmt::join(outputs, ","));
}

}  // namespace clearcap
