// GET /metrics (Prometheus text) and the counters object of GET /status,
// rendered from one Counters snapshot (core/counters: the loss rows come
// from its one table) and the run's gauges.
// Thread: free functions.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "core/counters.h"

namespace clearcap {

struct LiveGauges {
  std::string module;                                   // the running module (clearcap_info)
  std::vector<std::pair<int, uint64_t>> reader_queues;  // (reader id, batches waiting for the processor)
  bool ecaptureq = false;                               // an eCaptureQ server runs
  uint64_t ecaptureq_pending = 0, ecaptureq_clients = 0;
  double uptime_s = 0;
};

std::string metrics_text(const Counters& t, const LiveGauges& g);
std::string counters_json(const Counters& t);

}  // namespace clearcap
