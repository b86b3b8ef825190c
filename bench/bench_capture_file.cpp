// Capture-file writer against plain zstd on the same bytes, same level, same
// run. The writer's throughput counts its whole path: re-serializing each
// Event into a record, batching, hand-off to the writer thread, compression
// and the write (to /dev/null, so the disk is not measured). Plain zstd
// compresses the already-built batch with ZSTD_compress. Target: the writer
// at >= 0.8x plain zstd's bytes/s. Both are timed in real time: the writer
// compresses on its own thread, so its CPU time on the caller says nothing.
//   build/bench/bench_capture_file --benchmark_counters_tabular=true
#include <benchmark/benchmark.h>
#include <zstd.h>

#include <cstring>
#include <random>
#include <thread>
#include <string>
#include <vector>

#include "sinks/capture_file/capture_writer.h"
#include "core/event.h"

namespace {

using namespace clearcap;

// Realistic plaintext: HTTP-ish headers and JSON-ish bodies from a fixed
// seed, so compression has the redundancy real traffic has.
struct Corpus {
  std::vector<std::vector<uint8_t>> records;  // ring records (cc_data_event + payload)
  std::vector<uint8_t> batch;                 // the same records as the writer lays them out
};

Corpus make_corpus(size_t payload, size_t count) {
  std::mt19937_64 rng(12345);
  static const char* words[] = {"GET", "/api/v1/users", "HTTP/1.1", "Host:", "example.com", "Content-Type:",
                                "application/json", "{\"id\":", "\"name\":", "\"status\":\"ok\"", "Accept:", "*/*",
                                "user-agent:", "curl/7.88", "\r\n", "42", "1337", "true", "null"};
  Corpus c;
  for (size_t i = 0; i < count; ++i) {
    std::string p;
    while (p.size() < payload) {
      p += words[rng() % (sizeof(words) / sizeof(words[0]))];
      p += (rng() % 4) ? " " : std::to_string(rng() % 100000);
    }
    p.resize(payload);
    cc_data_event ev{};
    ev.hdr.type = CC_REC_DATA;
    ev.hdr.hdr_len = sizeof(ev);
    ev.hdr.data_len = static_cast<uint32_t>(payload);
    ev.pid = 1000 + static_cast<uint32_t>(i % 7);
    ev.tid = ev.pid;
    ev.fd = 5;
    ev.ts_ns = 1'000'000'000ull + i * 20'000;
    ev.conn_id = 1 + i % 50;
    ev.seq = i * payload;
    ev.call_len = static_cast<uint32_t>(payload);
    ev.sport = 443;
    ev.dport = 40000 + static_cast<uint16_t>(i % 50);
    ev.family = 2;
    ev.direction = static_cast<uint8_t>(i % 2);
    ev.flags = CC_FLAG_HAS_TUPLE | CC_FLAG_LAST_CHUNK;
    std::memcpy(ev.comm, "nginx", 5);
    std::vector<uint8_t> rec(sizeof(ev) + payload);
    std::memcpy(rec.data(), &ev, sizeof(ev));
    std::memcpy(rec.data() + sizeof(ev), p.data(), payload);
    uint32_t len = static_cast<uint32_t>(rec.size());
    c.batch.insert(c.batch.end(), reinterpret_cast<uint8_t*>(&len), reinterpret_cast<uint8_t*>(&len) + 4);
    c.batch.insert(c.batch.end(), rec.begin(), rec.end());
    c.records.push_back(std::move(rec));
  }
  return c;
}

// A /dev/null output: measures compression and hand-off, not the disk.
class NullOutput : public CaptureOutput {
 public:
  Result<void> write(std::span<const uint8_t> b) override {
    bytes_ += b.size();
    return {};
  }
  bool at_file_start() const override { return bytes_ == 0; }
  Result<void> close() override { return {}; }
  const std::string& name() const override { return name_; }
  uint64_t bytes_ = 0;

 private:
  std::string name_ = "null";
};

constexpr size_t kBatch = 1 << 20;

void writer(benchmark::State& state, size_t payload, int level) {
  Corpus c = make_corpus(payload, kBatch / (payload + 132) + 1);
  std::vector<Event> events(c.records.size());
  for (size_t i = 0; i < events.size(); ++i) {
    decode_record(c.records[i], events[i]);
    events[i].wall_ns = events[i].boot_ns + 1'700'000'000'000'000'000ull;
  }
  // One sink for the whole run (as in a capture); batch_bytes = the corpus,
  // so each iteration's last record closes exactly one frame. An iteration
  // ends when the writer thread has compressed and written that frame.
  auto out = std::make_unique<NullOutput>();
  NullOutput* o = out.get();
  CaptureFileSink::Options opts;
  opts.level = level;
  opts.batch_bytes = c.batch.size();
  CaptureFileSink sink(std::move(out), opts);
  uint64_t frames = 0;
  for (auto _ : state) {
    for (const auto& ev : events) sink.write(ev);
    ++frames;
    while (sink.frames_written() < frames && sink.dropped_events() == 0) std::this_thread::yield();
  }
  sink.finish();
  const uint64_t out_bytes = o->bytes_ / std::max<uint64_t>(frames, 1);
  const uint64_t dropped = sink.dropped_events();
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * c.batch.size()));
  state.counters["ratio"] = static_cast<double>(c.batch.size()) / static_cast<double>(out_bytes);
  state.counters["dropped"] = static_cast<double>(dropped);
}

void plain(benchmark::State& state, size_t payload, int level) {
  Corpus c = make_corpus(payload, kBatch / (payload + 132) + 1);
  std::vector<uint8_t> dst(ZSTD_compressBound(c.batch.size()));
  size_t n = 0;
  for (auto _ : state) {
    n = ZSTD_compress(dst.data(), dst.size(), c.batch.data(), c.batch.size(), level);
    benchmark::DoNotOptimize(n);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * c.batch.size()));
  state.counters["ratio"] = static_cast<double>(c.batch.size()) / static_cast<double>(n);
}

void BM_CaptureWriter_256B_L1(benchmark::State& s) { writer(s, 256, 1); }
void BM_Zstd_Compress_256B_L1(benchmark::State& s) { plain(s, 256, 1); }
void BM_CaptureWriter_16KiB_L1(benchmark::State& s) { writer(s, 16384, 1); }
void BM_Zstd_Compress_16KiB_L1(benchmark::State& s) { plain(s, 16384, 1); }
void BM_CaptureWriter_256B_L3(benchmark::State& s) { writer(s, 256, 3); }
void BM_Zstd_Compress_256B_L3(benchmark::State& s) { plain(s, 256, 3); }
void BM_CaptureWriter_16KiB_L3(benchmark::State& s) { writer(s, 16384, 3); }
void BM_Zstd_Compress_16KiB_L3(benchmark::State& s) { plain(s, 16384, 3); }

BENCHMARK(BM_CaptureWriter_256B_L1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Zstd_Compress_256B_L1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CaptureWriter_16KiB_L1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Zstd_Compress_16KiB_L1)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CaptureWriter_256B_L3)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Zstd_Compress_256B_L3)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CaptureWriter_16KiB_L3)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Zstd_Compress_16KiB_L3)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
