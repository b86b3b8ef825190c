#include "core/counters.h"

#include <cstring>

#include <fmt/format.h>

#include "core/json_text.h"

namespace clearcap {

namespace {

constexpr KernelLossCause kKernelCauses[] = {
    {"ringbuf_full", "ring buffer full", "records", CC_STAT_RINGBUF_FULL, CC_STAT_RINGBUF_FULL_BYTES},
    {"chunk_limit", "per-call chunk limit", "calls", CC_STAT_CHUNK_LIMIT, CC_STAT_CHUNK_LIMIT_BYTES},
    {"read_fault", "user memory read faults", "chunks", CC_STAT_READ_FAULT, CC_STAT_READ_FAULT_BYTES},
    {"no_entry_state", "calls without entry state", "calls", CC_STAT_NO_ENTRY_STATE, -1},
    {"call_state_full", "call state not stored", "calls", CC_STAT_CALL_STATE_FULL, -1},
    {"conn_state_full", "connection table full", "calls", CC_STAT_CONN_STATE_FULL, -1},
    {"no_ring", "no ring for CPU", "records", CC_STAT_NO_RING, -1},
    {"scratch_busy", "record scratch busy (preempted)", "calls", CC_STAT_SCRATCH_BUSY, -1},
    {"keys_ringbuf_full", "key records dropped (ring full)", "records", CC_STAT_KEYS_RINGBUF_FULL, -1},
    {"keys_read_fault", "key items unreadable", "items", CC_STAT_KEYS_READ_FAULT, -1},
    {"packets_ringbuf_full", "packets dropped (ring full)", "packets", CC_STAT_PACKETS_RINGBUF_FULL,
     CC_STAT_PACKETS_RINGBUF_FULL_BYTES},
    {"packets_read_fault", "packets not copied", "packets", CC_STAT_PACKETS_READ_FAULT, -1},
    {"packets_scratch_busy", "packet scratch busy", "packets", CC_STAT_PACKETS_SCRATCH_BUSY, -1},
};

constexpr CounterInfo kActivity[] = {
    {"events", "Events delivered to the outputs.", [](const Counters& c) { return c.events; }},
    {"payload_bytes", "Plaintext bytes delivered to the outputs.", [](const Counters& c) { return c.payload_bytes; }},
    {"bpf_records", "Records the BPF programs wrote to the rings.",
     [](const Counters& c) { return c.bpf[CC_STAT_EVENTS]; }},
    {"keys_records", "Key records the BPF programs wrote (one per completed handshake).",
     [](const Counters& c) { return c.bpf[CC_STAT_KEYS]; }},
    {"packets", "Packets the tc programs copied (-m pcap).", [](const Counters& c) { return c.bpf[CC_STAT_PACKETS]; }},
    {"filtered_calls", "Library calls skipped by the pid/uid/cgroup filters.",
     [](const Counters& c) { return c.bpf[CC_STAT_FILTERED]; }},
    {"not_tls_calls", "Library calls skipped because they were on no TLS object (nss: NSPR descriptors without "
                      "an SSL layer).",
     [](const Counters& c) { return c.bpf[CC_STAT_NOT_TLS]; }},
    {"events_without_fd", "Events whose socket was not known (no addresses).",
     [](const Counters& c) { return c.bpf[CC_STAT_NO_FD]; }},
    {"stream_gaps", "Jumps in a stream's byte offset seen in the output.", [](const Counters& c) { return c.gaps; }},
    {"stream_gap_bytes", "Bytes missing in those jumps.", [](const Counters& c) { return c.gap_bytes; }},
    {"late_events", "Events released after a later one (merge window too short).",
     [](const Counters& c) { return c.late; }},
    {"reader_stalls", "Times a reader waited for a free batch.", [](const Counters& c) { return c.stalls; }},
    {"targets_attached_later", "Library files that appeared after start (new process, dlopen, container) and were "
                               "hooked then.",
     [](const Counters& c) { return c.targets_attached_later; }},
    {"targets_not_attached", "Library files that appeared after start and could not be hooked: their plaintext "
                             "is not captured (the log names them).",
     [](const Counters& c) { return c.targets_not_attached; }},
    // The protocol stage (0 when nothing shows events, or with --no-http).
    {"http_connections", "Connections recognised as HTTP/1.x or HTTP/2.",
     [](const Counters& c) { return c.http.connections; }},
    {"http_messages", "HTTP messages reported, incomplete ones included.",
     [](const Counters& c) { return c.http.messages; }},
    {"http_incomplete_messages", "HTTP messages reported incomplete (a gap, the end of capture, a bound).",
     [](const Counters& c) { return c.http.incomplete; }},
    {"http_bodies_cut", "HTTP bodies longer than --http-body-max, shown cut.",
     [](const Counters& c) { return c.http.bodies_cut; }},
    {"http_exchanges", "HTTP requests paired with their responses, unpaired ones included.",
     [](const Counters& c) { return c.http.exchanges; }},
    {"http_unpaired_exchanges", "HTTP exchanges with a half missing.", [](const Counters& c) { return c.http.unpaired; }},
    {"http_unpaired_gap_exchanges", "Of them, HTTP/1 requests whose response was in lost bytes.",
     [](const Counters& c) { return c.http.unpaired_gap; }},
    {"http_parse_errors", "HTTP/1 parse errors, HTTP/2 framing and HPACK errors.",
     [](const Counters& c) { return c.http.parse_errors; }},
    {"http_headers_unknown", "HTTP/2 header blocks that needed HPACK state from before capture (not decoded).",
     [](const Counters& c) { return c.http.hpack_unknown; }},
    {"http_stream_gaps", "Stream gaps the HTTP parsers resynchronised after.", [](const Counters& c) { return c.http.gaps; }},
    {"http_given_up", "HTTP connections and waiting requests given up at the stage's bounds.",
     [](const Counters& c) { return c.http.evicted; }},
};

}  // namespace

std::span<const KernelLossCause> kernel_loss_causes() { return kKernelCauses; }
std::span<const CounterInfo> activity_counters() { return kActivity; }

std::vector<Counters::Loss> Counters::losses() const {
  std::vector<Loss> out;
  for (const auto& k : kKernelCauses) {
    Loss l{k.name, {}, k.text, k.unit, bpf[static_cast<size_t>(k.records)]};
    if (k.bytes >= 0) {
      l.has_bytes = true;
      l.bytes = bpf[static_cast<size_t>(k.bytes)];
    }
    out.push_back(std::move(l));
  }
  out.push_back(Loss{"oversize", {}, "oversize records (reader)", "records", oversize});
  out.push_back(Loss{"undecodable", {}, "undecodable records (processor)", "records", decode_errors});
  for (const auto& o : outputs) {
    Loss l{"output", o.name, fmt::format("output {}", o.name), "events", o.dropped_events};
    l.has_bytes = true;
    l.bytes = o.dropped_bytes;
    out.push_back(std::move(l));
  }
  return out;
}

namespace {

// The totals of a set of rows: each renderer builds the rows once.
uint64_t sum_count(const std::vector<Counters::Loss>& rows) {
  uint64_t n = 0;
  for (const auto& l : rows) n += l.count;
  return n;
}

uint64_t sum_bytes(const std::vector<Counters::Loss>& rows) {
  uint64_t n = 0;
  for (const auto& l : rows) n += l.bytes;
  return n;
}

}  // namespace

uint64_t Counters::lost() const { return sum_count(losses()); }

uint64_t Counters::lost_bytes() const { return sum_bytes(losses()); }

std::vector<std::string> summary_lines(const Counters& t, double seconds, const std::vector<std::string>& extra) {
  std::vector<std::string> out;
  out.push_back(fmt::format("--- summary ({:.1f} s) ---", seconds));
  out.push_back(fmt::format("events: {} ({} bytes of plaintext)", t.events, t.payload_bytes));
  // The headline total is every loss row, outputs included.
  for (auto& line : summary_loss_lines(t)) out.push_back(std::move(line));
  out.insert(out.end(), extra.begin(), extra.end());
  out.push_back(fmt::format("stream gaps seen in output: {} ({} bytes); events out of order: {}", t.gaps, t.gap_bytes,
                            t.late));
  for (const auto& o : t.outputs)
    out.push_back(fmt::format(
        "output {}: {} write errors, {} bytes and {} events not delivered{}{}", o.name, o.write_errors, o.dropped_bytes,
        o.dropped_events, o.last_errno ? fmt::format(" (last error: {})", std::strerror(o.last_errno)) : "",
        // Why a queue filled without an error: how long the destination held one write.
        o.dropped_events && o.longest_write_ns
            ? fmt::format("; longest write {} ms", (o.longest_write_ns + 999'999) / 1'000'000)
            : ""));
  out.push_back(fmt::format("events without a known fd: {}; calls skipped by filters: {}; reader stalls: {}{}",
                            t.bpf[CC_STAT_NO_FD], t.bpf[CC_STAT_FILTERED], t.stalls,
                            t.ring_bytes ? fmt::format("; ring peak fill: {}% of {} KiB",
                                                       t.ring_peak_fill * 100 / t.ring_bytes, t.ring_bytes / 1024)
                                         : ""));
  out.push_back(fmt::format("targets that appeared after start: {} hooked, {} not hooked (not captured)",
                            t.targets_attached_later, t.targets_not_attached));
  return out;
}

std::vector<std::string> summary_loss_lines(const Counters& c) {
  const auto rows = c.losses();
  std::vector<std::string> lines;
  lines.push_back(fmt::format("losses: {} ({} bytes known lost)", sum_count(rows), sum_bytes(rows)));
  for (const auto& l : rows) {
    if (!l.output.empty()) continue;  // each output has its own summary line
    lines.push_back(l.has_bytes ? fmt::format("  {}: {} {} ({} bytes)", l.text, l.count, l.unit, l.bytes)
                                : fmt::format("  {}: {} {}", l.text, l.count, l.unit));
  }
  return lines;
}

std::string stats_line(const Counters& now, const Counters& prev, double interval_s) {
  const auto rows = now.losses();
  std::string causes;
  for (const auto& l : rows) {
    if (l.count == 0) continue;
    causes += fmt::format("{}{} {}", causes.empty() ? "" : ", ", l.output.empty() ? l.cause : l.text, l.count);
  }
  return fmt::format("stats: events {} (+{:.0f}/s), bytes {}, lost {} ({} bytes){}", now.events,
                     static_cast<double>(now.events - prev.events) / interval_s, now.payload_bytes, sum_count(rows),
                     sum_bytes(rows), causes.empty() ? "" : ": " + causes);
}

void metrics_losses(PrometheusText& p, const Counters& c) {
  const auto rows = c.losses();
  p.family("clearcap_lost_records_total", "counter",
           "Records, calls or events lost, by cause (outputs: events not delivered, per output).");
  for (const auto& l : rows) {
    if (l.output.empty()) p.sample("clearcap_lost_records_total", {{"cause", l.cause}}, l.count);
    else p.sample("clearcap_lost_records_total", {{"cause", l.cause}, {"output", l.output}}, l.count);
  }
  p.family("clearcap_lost_bytes_total", "counter", "Bytes known lost, by cause (where the cause knows them).");
  for (const auto& l : rows) {
    if (!l.has_bytes) continue;
    if (l.output.empty()) p.sample("clearcap_lost_bytes_total", {{"cause", l.cause}}, l.bytes);
    else p.sample("clearcap_lost_bytes_total", {{"cause", l.cause}, {"output", l.output}}, l.bytes);
  }
}

std::string losses_json(const Counters& c) {
  const auto rows = c.losses();
  std::string by_cause, by_output;
  for (const auto& l : rows) {
    if (l.output.empty()) {
      by_cause += fmt::format(R"({}"{}":{})", by_cause.empty() ? "" : ",", l.cause, l.count);
    } else {
      by_output += fmt::format(R"({}"{}":{})", by_output.empty() ? "" : ",", json_escape(l.output), l.count);
    }
  }
  return fmt::format(R"("lost_records":{},"lost_bytes":{},"lost_by_cause":{{{}{}"output":{{{}}}}})",
                     sum_count(rows), sum_bytes(rows), by_cause, by_cause.empty() ? "" : ",", by_output);
}

}  // namespace clearcap
