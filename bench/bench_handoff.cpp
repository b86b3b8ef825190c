// Reader -> processor hand-off with real threads, without the kernel: a
// producer thread plays a RingReader (copies records into pooled batches,
// hands full ones over an SPSC queue, gets emptied ones back) and the
// Processor consumes them. BM_Pipeline_ReaderThread is the figure behind the
// "≥ 2 M events/s per reader thread for 256-byte records" target; the BPF
// ring's mmap consumer itself is root-only (bench/probe_cost).
#include <benchmark/benchmark.h>

#include <atomic>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "core/processor.h"
#include "bench_data.h"
#include "../tests/unit/test_record.h"

namespace clearcap {
namespace {

constexpr size_t kRecordBytes = 256;  // header + payload, as in the target
constexpr size_t kBatchBytes = 512 * 1024;  // RingReader::Options defaults
constexpr size_t kPoolBatches = 16;

std::vector<uint8_t> record(uint64_t ts, uint32_t seed) {
  test::TestRecord r;
  r.raw.ts_ns = ts;
  r.ipv4("127.0.0.1", 40000, "127.0.0.1", 443);
  std::mt19937 rng(seed);
  std::string p(kRecordBytes - sizeof(cc_data_event), ' ');
  for (auto& c : p) c = static_cast<char>('a' + rng() % 26);
  r.with_payload(p);
  return r.bytes();
}

// A reader thread's hand-off, as RingReader does it: fixed pool, SPSC queues
// both ways, a semaphore to wake the processor, never an allocation.
class ThreadedSource : public BatchSource {
 public:
  ThreadedSource(const std::vector<std::vector<uint8_t>>& recs, size_t total,
                 moodycamel::spsc_sema::LightweightSemaphore* wake)
      : recs_(recs), total_(total), wake_(wake), full_(kPoolBatches + 1), free_(kPoolBatches + 1) {
    for (size_t i = 0; i < kPoolBatches; ++i) {
      pool_.push_back(std::make_unique<Batch>(kBatchBytes));
      free_.enqueue(pool_.back().get());
    }
  }
  void start() {
    thread_ = std::thread([this] { run(); });
  }
  void join() { thread_.join(); }
  Queue& full_queue() override { return full_; }
  void recycle(Batch* b) override {
    b->clear();
    free_.enqueue(b);
    freed_.signal();
  }
  bool finished() const override { return finished_.load(std::memory_order_acquire); }
  uint64_t stalls() const { return stalls_; }

 private:
  void run() {
    Batch* cur = nullptr;
    for (size_t i = 0; i < total_; ++i) {
      const auto& r = recs_[i % recs_.size()];
      while (!cur || !cur->append(r.data(), static_cast<uint32_t>(r.size()))) {
        if (cur) {
          full_.enqueue(cur);
          wake_->signal();
          cur = nullptr;
        }
        while (!free_.try_dequeue(cur)) {
          ++stalls_;  // processor behind: sleep like a stalled RingReader
          freed_.wait();
        }
      }
    }
    if (cur && !cur->empty()) full_.enqueue(cur);
    finished_.store(true, std::memory_order_release);
    wake_->signal();
  }

  const std::vector<std::vector<uint8_t>>& recs_;
  size_t total_;
  moodycamel::spsc_sema::LightweightSemaphore* wake_;
  moodycamel::spsc_sema::LightweightSemaphore freed_;
  std::vector<std::unique_ptr<Batch>> pool_;
  Queue full_, free_;
  std::thread thread_;
  std::atomic<bool> finished_{false};
  uint64_t stalls_ = 0;
};

using CountSink = bench::CountingSink;

// One reader thread -> processor -> a sink that only counts: the pipeline's
// own ceiling per reader thread (encoders are measured on their own).
void BM_Pipeline_ReaderThread(benchmark::State& state) {
  const size_t total = 1'000'000;
  std::vector<std::vector<uint8_t>> recs;
  for (uint32_t i = 0; i < 4096; ++i) recs.push_back(record(i, 42 + i));
  uint64_t stalls = 0;
  for (auto _ : state) {
    state.PauseTiming();
    // Monotonic timestamps as one CPU's ring delivers them.
    for (size_t i = 0; i < recs.size(); ++i) reinterpret_cast<cc_data_event*>(recs[i].data())->ts_ns = i + 1;
    CountSink sink;
    moodycamel::spsc_sema::LightweightSemaphore wake;
    ThreadedSource src(recs, total, &wake);
    Processor p({&src}, sink, {}, &wake);
    state.ResumeTiming();
    p.start();
    src.start();
    src.join();
    p.join();
    stalls += src.stalls();
    benchmark::DoNotOptimize(sink.bytes);
  }
  state.counters["stalls"] = static_cast<double>(stalls);
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(total));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(total * kRecordBytes));
}
BENCHMARK(BM_Pipeline_ReaderThread)->Unit(benchmark::kMillisecond)->UseRealTime();

// The hand-off alone: batches of 256-byte records through the SPSC queue
// pair to a consumer thread that only walks the records and recycles.
void BM_Handoff_SpscBatch(benchmark::State& state) {
  const size_t total = 2'000'000;
  std::vector<std::vector<uint8_t>> recs;
  for (uint32_t i = 0; i < 64; ++i) recs.push_back(record(i, 7 + i));
  for (auto _ : state) {
    moodycamel::spsc_sema::LightweightSemaphore wake;
    ThreadedSource src(recs, total, &wake);
    uint64_t seen = 0;
    std::thread consumer([&] {
      while (true) {
        Batch* b = nullptr;
        if (src.full_queue().try_dequeue(b)) {
          size_t off = 0;
          while (off < b->used()) {
            auto rec = b->record_at(off, &off);
            seen += rec.size() ? 1 : 0;
          }
          src.recycle(b);
        } else if (src.finished() && !src.full_queue().peek()) {
          break;
        } else {
          wake.wait();
        }
      }
    });
    src.start();
    src.join();
    consumer.join();
    if (seen != total) state.SkipWithError("records lost in the hand-off");
  }
  state.SetItemsProcessed(state.iterations() * static_cast<int64_t>(total));
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(total * kRecordBytes));
}
BENCHMARK(BM_Handoff_SpscBatch)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace clearcap
