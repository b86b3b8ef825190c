// Pipeline hot paths without the kernel: record decode, batch hand-off into
// the processor's timestamp merge, and the encoders. Fixed seeds and sizes.
#include <benchmark/benchmark.h>

#include <memory>
#include <random>
#include <vector>

#include "core/processor.h"
#include "sinks/encoders/json_encoder.h"
#include "sinks/encoders/text_encoder.h"
#include "../tests/unit/scripted_source.h"
#include "../tests/unit/test_record.h"
#include "bench_data.h"
#include "bench_merge.h"

namespace clearcap {
namespace {

using bench::make_record;
using bench::printable_payload;
using NullSink = bench::CountingSink;

void BM_Decode_Record(benchmark::State& state) {
  auto rec = make_record(1, static_cast<size_t>(state.range(0)));
  Event ev;
  for (auto _ : state) {
    benchmark::DoNotOptimize(decode_record(rec, ev));
    benchmark::DoNotOptimize(ev);
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(rec.size()));
}
BENCHMARK(BM_Decode_Record)->Arg(256)->Arg(16384);


// Two sources (two CPUs' rings) of 256-byte records, merged by timestamp.
void BM_Processor_Merge(benchmark::State& state) {
  const size_t per_source = 100'000;
  std::vector<std::vector<uint8_t>> recs_a, recs_b;
  for (size_t i = 0; i < per_source; ++i) {
    recs_a.push_back(make_record(2 * i, 256 - sizeof(cc_data_event)));
    recs_b.push_back(make_record(2 * i + 1, 256 - sizeof(cc_data_event)));
  }
  for (auto _ : state) {
    NullSink sink;
    bench::merge_once(state, recs_a, recs_b, sink);
    benchmark::DoNotOptimize(sink.bytes);
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(2 * per_source));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(2 * per_source * 256));
}
// Real time: the work happens on the processor thread.
BENCHMARK(BM_Processor_Merge)->Unit(benchmark::kMillisecond)->UseRealTime();

// What an encoder benchmark feeds: by default an IPv4 HTTP request with a
// printable payload, always at the same time.
enum class EncodeCase {
  kHttp,
  kIpv6,       // IPv6 addresses
  kNewSecond,  // every event in a new second: the worst case for time formatting
  kBinary,     // random bytes: base64 (JSON), hex dump (text)
};

template <class Enc>
void encode_bench(benchmark::State& state, EncodeCase what = EncodeCase::kHttp) {
  const auto size = static_cast<size_t>(state.range(0));
  test::TestRecord r;
  if (what == EncodeCase::kIpv6) {
    r.ipv6("2001:db8::1:0:0:7", 40000, "2001:db8:0:1::443", 443);
  } else {
    r.ipv4("127.0.0.1", 40000, "127.0.0.1", 443);
  }
  if (what == EncodeCase::kBinary) {
    std::mt19937 rng(7);
    std::string bytes(size, '\0');
    for (auto& c : bytes) c = static_cast<char>(rng());
    r.with_payload(bytes);
  } else {
    const std::string head = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    r.with_payload(head + printable_payload(size - head.size(), 7));
  }
  Event ev = r.event();
  Enc enc(FormatOptions{});
  std::string out;
  for (auto _ : state) {
    if (what == EncodeCase::kNewSecond) ev.wall_ns += 1'000'000'000;
    out.clear();
    enc.encode(ev, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(ev.payload.size()));
}
void BM_JsonEncoder_Encode(benchmark::State& state) { encode_bench<JsonEncoder>(state); }
void BM_TextEncoder_Encode(benchmark::State& state) { encode_bench<TextEncoder>(state); }
BENCHMARK(BM_JsonEncoder_Encode)->Arg(256)->Arg(16384);
BENCHMARK(BM_TextEncoder_Encode)->Arg(256)->Arg(16384);
void BM_JsonEncoder_Ipv6(benchmark::State& state) { encode_bench<JsonEncoder>(state, EncodeCase::kIpv6); }
void BM_TextEncoder_Ipv6(benchmark::State& state) { encode_bench<TextEncoder>(state, EncodeCase::kIpv6); }
void BM_JsonEncoder_NewSecond(benchmark::State& state) {
  encode_bench<JsonEncoder>(state, EncodeCase::kNewSecond);
}
void BM_TextEncoder_NewSecond(benchmark::State& state) {
  encode_bench<TextEncoder>(state, EncodeCase::kNewSecond);
}
void BM_JsonEncoder_Binary(benchmark::State& state) { encode_bench<JsonEncoder>(state, EncodeCase::kBinary); }
void BM_TextEncoder_Binary(benchmark::State& state) { encode_bench<TextEncoder>(state, EncodeCase::kBinary); }
BENCHMARK(BM_JsonEncoder_Ipv6)->Arg(256);
BENCHMARK(BM_TextEncoder_Ipv6)->Arg(256);
BENCHMARK(BM_JsonEncoder_NewSecond)->Arg(256);
BENCHMARK(BM_TextEncoder_NewSecond)->Arg(256);
BENCHMARK(BM_JsonEncoder_Binary)->Arg(256)->Arg(16384);
BENCHMARK(BM_TextEncoder_Binary)->Arg(256)->Arg(16384);

}  // namespace
}  // namespace clearcap
