// Where the eCaptureQ server encodes: BM_Ecaptureq_Serialize is the cost of
// filling a reused LogEntry and serializing it (what the processor thread
// would pay if it encoded); BM_Ecaptureq_CopyEvent the cost of copying the
// event out (what it pays now; the io thread encodes). BM_Ecaptureq_Write
// runs the real EcaptureqServer::write with its io thread draining (in this
// tight loop most events find no free slot: "dropped" shows that the
// processor is never held up). BM_Json_Encode, the stdout encoder, for scale.
#include <benchmark/benchmark.h>

#include <random>
#include <string>

#include "sinks/ecaptureq/ecaptureq_convert.h"
#include "sinks/ecaptureq/ecaptureq_server.h"
#include "sinks/encoders/json_encoder.h"
#include "../tests/unit/test_record.h"

namespace clearcap {
namespace {

test::TestRecord make_record(size_t payload) {
  test::TestRecord r;
  r.raw.ts_ns = 123456789;
  r.ipv4("127.0.0.1", 40000, "127.0.0.1", 443);
  std::mt19937 rng(42);
  std::string s(payload, ' ');
  for (auto& c : s) c = static_cast<char>('a' + rng() % 26);
  r.with_payload("GET /" + s);
  return r;
}

void BM_Ecaptureq_Serialize(benchmark::State& state) {
  auto rec = make_record(static_cast<size_t>(state.range(0)));
  Event ev = rec.event();
  ecaptureq::LogEntry entry;
  std::string slot;
  for (auto _ : state) {
    fill_log_entry(ev, FormatOptions{}, entry);
    slot.resize(entry.ByteSizeLong());
    entry.SerializeWithCachedSizesToArray(reinterpret_cast<uint8_t*>(slot.data()));
    benchmark::DoNotOptimize(slot.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Ecaptureq_Serialize)->Arg(256)->Arg(16000);

// The floor of encoding elsewhere: copy the header and the payload out.
void BM_Ecaptureq_CopyEvent(benchmark::State& state) {
  auto rec = make_record(static_cast<size_t>(state.range(0)));
  Event ev = rec.event();
  std::string slot;
  for (auto _ : state) {
    slot.assign(reinterpret_cast<const char*>(&ev), sizeof(ev));
    slot.append(reinterpret_cast<const char*>(ev.payload.data()), ev.payload.size());
    slot.append(ev.comm);
    benchmark::DoNotOptimize(slot.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Ecaptureq_CopyEvent)->Arg(256)->Arg(16000);

void BM_Ecaptureq_Write(benchmark::State& state) {
  auto rec = make_record(static_cast<size_t>(state.range(0)));
  Event ev = rec.event();
  EcaptureqServer::Options o;
  o.url.host = "127.0.0.1";
  auto server = EcaptureqServer::start(o);
  if (!server) {
    state.SkipWithError(server.error().message.c_str());
    return;
  }
  for (auto _ : state) (*server)->write(ev);
  std::vector<SinkStats> stats;
  (*server)->collect_stats(stats);
  state.counters["dropped"] = static_cast<double>(stats[0].dropped_events);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Ecaptureq_Write)->Arg(256)->Arg(16000);

void BM_Json_Encode(benchmark::State& state) {
  auto rec = make_record(static_cast<size_t>(state.range(0)));
  Event ev = rec.event();
  JsonEncoder enc(FormatOptions{});
  std::string out;
  for (auto _ : state) {
    out.clear();
    enc.encode(ev, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Json_Encode)->Arg(256)->Arg(16000);

}  // namespace
}  // namespace clearcap

