// CaptureFileSource: capture files as a batch source, so that replaying a
// recording runs the very path live capture runs (processor -> stream
// tracking -> outputs): clearcap export, the replay tests and benchmarks.
// Several files are merged by wall time (rotated pieces, several hosts);
// each batch carries its records' clock offset from the file, so times come
// out as recorded. Offline, nothing is dropped: the source waits for the
// processor to give batches back.
// Thread: a thread of its own reads and merges; the processor thread takes
// batches (BatchSource); bytes_done(), finished() from any thread; the
// readers' problems and counts once join() returned.
#pragma once

#include <atomic>
#include <memory>
#include <thread>
#include <vector>

#include <readerwriterqueue/readerwriterqueue.h>
#include <readerwriterqueue/atomicops.h>

#include "core/batch_source.h"
#include "sinks/capture_file/capture_reader.h"

namespace clearcap {

class CaptureFileSource : public BatchSource {
 public:
  static constexpr size_t kBatchBytes = 1u << 20;  // > the largest record (64 KiB packet)
  static constexpr size_t kBatches = 8;

  // `wake` is the processor's: signalled after each hand-over.
  CaptureFileSource(std::vector<std::unique_ptr<CaptureReader>> readers,
                    moodycamel::spsc_sema::LightweightSemaphore* wake);
  ~CaptureFileSource() override;

  void start();
  // Stops early (the consumer failed); the source then finishes.
  void request_stop() {
    thread_.request_stop();
    freed_.signal();
  }
  void join();

  Queue& full_queue() override { return full_; }
  void recycle(Batch* b) override;
  bool finished() const override { return finished_.load(std::memory_order_acquire); }
  // Offline: every record is there already; no window to wait for.
  uint64_t watermark() const override { return ~uint64_t{0}; }

  uint64_t bytes_done() const { return bytes_done_.load(std::memory_order_relaxed); }
  uint64_t records() const { return records_.load(std::memory_order_relaxed); }
  const std::vector<std::unique_ptr<CaptureReader>>& readers() const { return readers_; }

 private:
  void run(std::stop_token stop);
  Batch* take_free(const std::stop_token& stop);  // waits for one; nullptr when stopped
  void hand_over(Batch*& b);

  std::vector<std::unique_ptr<CaptureReader>> readers_;
  moodycamel::spsc_sema::LightweightSemaphore* wake_;
  std::vector<std::unique_ptr<Batch>> pool_;
  Queue full_{kBatches + 1};
  moodycamel::ReaderWriterQueue<Batch*> free_{kBatches + 1};
  moodycamel::spsc_sema::LightweightSemaphore freed_;
  std::atomic<bool> finished_{false};
  std::atomic<uint64_t> bytes_done_{0}, records_{0};
  std::jthread thread_;
};

}  // namespace clearcap
