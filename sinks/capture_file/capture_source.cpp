#include "sinks/capture_file/capture_source.h"

namespace clearcap {

CaptureFileSource::CaptureFileSource(std::vector<std::unique_ptr<CaptureReader>> readers,
                                     moodycamel::spsc_sema::LightweightSemaphore* wake)
    : readers_(std::move(readers)), wake_(wake) {
  for (size_t i = 0; i < kBatches; ++i) {
    pool_.push_back(std::make_unique<Batch>(kBatchBytes));
    free_.enqueue(pool_.back().get());
  }
}

CaptureFileSource::~CaptureFileSource() {
  request_stop();
  join();
}

void CaptureFileSource::start() { thread_ = std::jthread([this](std::stop_token stop) { run(stop); }); }

void CaptureFileSource::join() {
  if (thread_.joinable()) thread_.join();
}

void CaptureFileSource::recycle(Batch* b) {
  b->clear();
  free_.enqueue(b);
  freed_.signal();
}

Batch* CaptureFileSource::take_free(const std::stop_token& stop) {
  Batch* b = nullptr;
  while (!free_.try_dequeue(b)) {
    if (stop.stop_requested()) return nullptr;
    freed_.wait(100'000);  // µs: re-check the stop flag now and then
  }
  return b;
}

void CaptureFileSource::hand_over(Batch*& b) {
  if (b && !b->empty()) {
    full_.enqueue(b);
    if (wake_) wake_->signal();
    b = nullptr;
  }
}

void CaptureFileSource::run(std::stop_token stop) {
  // Merge by wall time: each file's records are in time order already (the
  // processor that wrote them merged them); take the oldest head among them.
  std::vector<Event> heads(readers_.size());
  std::vector<bool> live(readers_.size());
  for (size_t i = 0; i < readers_.size(); ++i) live[i] = readers_[i]->next(heads[i]);
  Batch* cur = nullptr;
  uint64_t n = 0;
  while (!stop.stop_requested()) {
    size_t best = readers_.size();
    for (size_t i = 0; i < readers_.size(); ++i)
      if (live[i] && (best == readers_.size() || heads[i].wall_ns < heads[best].wall_ns)) best = i;
    if (best == readers_.size()) break;
    const Event& ev = heads[best];
    const int64_t offset = static_cast<int64_t>(ev.wall_ns - ev.boot_ns);
    // A batch carries one clock offset: a record with another starts a new one.
    if (cur && (cur->wall_offset() != offset ||
                !cur->append(ev.record.data(), static_cast<uint32_t>(ev.record.size()))))
      hand_over(cur);
    if (!cur) {
      cur = take_free(stop);
      if (!cur) break;
      cur->set_wall_offset(offset);
      cur->append(ev.record.data(), static_cast<uint32_t>(ev.record.size()));
    }
    records_.store(++n, std::memory_order_relaxed);
    live[best] = readers_[best]->next(heads[best]);
    if ((n & 255) == 0) {
      uint64_t done = 0;
      for (auto& r : readers_) done += r->bytes_done();
      bytes_done_.store(done, std::memory_order_relaxed);
    }
  }
  hand_over(cur);  // an empty batch stays out of the queues (the pool owns it)
  uint64_t done = 0;
  for (auto& r : readers_) done += r->bytes_done();
  bytes_done_.store(done, std::memory_order_relaxed);
  finished_.store(true, std::memory_order_release);
  if (wake_) wake_->signal();
}

}  // namespace clearcap
