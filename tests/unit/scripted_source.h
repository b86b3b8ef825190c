// A BatchSource fed by the test: records are packed into batches up front,
// then the source reports finished (or stays open to test the merge window).
#pragma once

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "core/batch_source.h"
#include "core/processor.h"
#include "sinks/event_sink.h"

namespace clearcap::test {

class ScriptedSource : public BatchSource {
 public:
  explicit ScriptedSource(size_t batch_bytes = 64 * 1024) : batch_bytes_(batch_bytes) {}

  void add(const std::vector<uint8_t>& record) {
    if (!current_ || !current_->append(record.data(), static_cast<uint32_t>(record.size()))) {
      flush();
      owned_.push_back(std::make_unique<Batch>(batch_bytes_));
      current_ = owned_.back().get();
      current_->append(record.data(), static_cast<uint32_t>(record.size()));
    }
  }
  void flush() {
    if (current_ && !current_->empty()) queue_.enqueue(current_);
    current_ = nullptr;
  }
  void finish() {
    flush();
    finished_.store(true);
  }

  Queue& full_queue() override { return queue_; }
  void recycle(Batch* b) override {
    b->clear();
    ++recycled_;
  }
  bool finished() const override { return finished_.load(); }
  uint64_t watermark() const override { return watermark_.load(); }
  void set_watermark(uint64_t ts) { watermark_.store(ts); }
  void kick() override { kicks_.fetch_add(1); }
  int kicks() const { return kicks_.load(); }
  size_t recycled() const { return recycled_; }
  size_t batches() const { return owned_.size(); }

 private:
  size_t batch_bytes_;
  std::vector<std::unique_ptr<Batch>> owned_;
  Batch* current_ = nullptr;
  Queue queue_{64};
  std::atomic<bool> finished_{false};
  std::atomic<uint64_t> watermark_{0};
  std::atomic<size_t> recycled_{0};
  std::atomic<int> kicks_{0};
};

struct CollectedEvent {
  uint64_t boot_ns, wall_ns, conn_id, seq;
  uint32_t pid;
  Direction direction;
  std::string comm, payload;
};

// Copies what it is given (the Event is a view valid only during write()).
class CollectingSink : public EventSink {
 public:
  void write(const Event& ev) override {
    events.push_back({ev.boot_ns, ev.wall_ns, ev.conn_id, ev.seq, ev.pid, ev.direction, std::string(ev.comm),
                      std::string(ev.payload.begin(), ev.payload.end())});
  }
  void flush() override { ++flushes; }
  void collect_stats(std::vector<SinkStats>&) const override {}
  std::vector<CollectedEvent> events;
  int flushes = 0;
};

}  // namespace clearcap::test
