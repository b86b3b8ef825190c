// Fixed inputs shared by the benchmarks and the instruction-count gate:
// printable payloads from a fixed seed, records built like the kernel's,
// and a sink that only counts (the cost under test is upstream of it).
#pragma once

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "sinks/event_sink.h"
#include "../tests/unit/test_record.h"

namespace clearcap::bench {

inline std::string printable_payload(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, ' ');
  for (auto& c : s) c = static_cast<char>('a' + rng() % 26);
  return s;
}

// A data record on 127.0.0.1:40000 -> :443 with `payload` printable bytes.
inline std::vector<uint8_t> make_record(uint64_t ts, size_t payload, uint64_t seq = 0, uint64_t conn = 0) {
  test::TestRecord r;
  r.raw.ts_ns = ts;
  r.raw.seq = seq;
  if (conn) r.raw.conn_id = conn;
  r.ipv4("127.0.0.1", 40000, "127.0.0.1", 443);
  r.with_payload(printable_payload(payload, 42));
  return r.bytes();
}

class CountingSink : public EventSink {
 public:
  void write(const Event& ev) override { bytes += ev.payload.size(); }
  void flush() override {}
  void collect_stats(std::vector<SinkStats>&) const override {}
  uint64_t bytes = 0;
};

}  // namespace clearcap::bench
