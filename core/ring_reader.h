// Reads one group of BPF ring buffers (one ring per CPU; a reader may own
// several) and hands batches of records to the processor through an SPSC
// queue. Never blocks on the processor and never allocates per event: when
// no free batch is left the reader stops consuming, records stay in the ring,
// and if the ring fills the BPF side counts the drop (CC_STAT_RINGBUF_FULL).
//
// Thread: the constructor, open(), start(), request_stop() and join() are for
// the owning thread; full_queue() is consumed and recycle() called by the
// processor thread only; counters may be read from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <thread>
#include <vector>

#include <readerwriterqueue/readerwriterqueue.h>

#include "core/batch.h"
#include "core/batch_source.h"
#include "core/result.h"

namespace clearcap {

class RingReader : public BatchSource {
 public:
  struct Options {
    size_t batch_bytes = 512 * 1024;  // >= the largest record
    size_t pool_batches = 16;         // batches in flight per reader
    int poll_ms = 20;                 // timer that finds records written without a wake-up
    bool perf = false;                // the fds are perf event rings (--buffer perf), not BPF rings
    // SCHED_FIFO priority of the thread (0 = normal scheduling). A woken
    // reader otherwise waits for the running thread's time slice to end
    // (measured: up to 4 ms behind the -w compressor, ~1.2 MiB of records
    // at 300 MB/s) before it empties its rings; real-time, it runs at once,
    // briefly (one drain), and sleeps again.
    int rt_priority = 1;
  };

  RingReader(int id, std::vector<int> ring_fds, uint32_t ring_bytes, Options opts,
             moodycamel::spsc_sema::LightweightSemaphore* processor_wake);
  ~RingReader() override;
  RingReader(const RingReader&) = delete;
  RingReader& operator=(const RingReader&) = delete;

  Result<void> open();  // mmaps the rings, creates the epoll set and the batch pool
  void start();
  // The reader drains every ring completely, hands over its last batch and
  // finishes. Call after the probes are detached so the drain is final.
  void request_stop() { thread_.request_stop(); }
  void join();
  bool finished() const override { return finished_.load(std::memory_order_acquire); }
  uint64_t watermark() const override { return watermark_.load(std::memory_order_acquire); }
  int id() const { return id_; }
  size_t ring_count() const { return ring_fds_.size(); }

  Queue& full_queue() override { return full_; }
  void recycle(Batch* b) override;

  uint64_t records() const { return records_.load(std::memory_order_relaxed); }
  uint64_t bytes() const { return bytes_.load(std::memory_order_relaxed); }
  uint64_t stalls() const { return stalls_.load(std::memory_order_relaxed); }
  uint64_t oversize() const { return oversize_.load(std::memory_order_relaxed); }
  // The most bytes any of this reader's rings held when the reader came to
  // it: near the ring size, the reader was late (not scheduled, or behind)
  // and records were or nearly were lost to a full ring.
  uint64_t peak_fill() const { return peak_fill_.load(std::memory_order_relaxed); }
  // How the thread is scheduled, in words (--debug); after start().
  const std::string& scheduling() const { return scheduling_; }
  // An error that ended the thread early (empty when none).
  std::string error() const;

 private:
  struct Ring;
  void run(std::stop_token stop);
  // Consumes one ring until it is empty or no batch is free; returns false
  // when it stopped for want of a batch.
  bool consume(Ring& r);
  bool consume_perf(Ring& r);
  // Maps a BPF ring's consumer page and, twice in a row, its data.
  Result<void> map_bpf_ring(Ring& r, size_t page);
  // Maps a perf ring's meta page and data once (records that wrap are copied).
  Result<void> map_perf_ring(Ring& r, size_t page);
  // Appends one record to the current batch (or a fresh one); false when
  // no batch is free (the record stays in its ring).
  bool take(const uint8_t* rec, uint32_t len);
  void note_fill(uint64_t fill) {
    if (fill > peak_fill_.load(std::memory_order_relaxed)) peak_fill_.store(fill, std::memory_order_relaxed);
  }
 public:
  void kick() override;

 private:
  bool next_batch();
  void hand_over();

  int id_;
  std::vector<int> ring_fds_;
  uint32_t ring_bytes_;
  Options opts_;
  moodycamel::spsc_sema::LightweightSemaphore* processor_wake_;
  moodycamel::spsc_sema::LightweightSemaphore batch_freed_;  // lets a stalled reader sleep
  std::vector<std::unique_ptr<Ring>> rings_;
  int epoll_fd_ = -1;
  int kick_fd_ = -1;  // eventfd in the epoll set: kick() ends the wait at once
  std::vector<std::unique_ptr<Batch>> pool_;
  std::vector<uint8_t> wrap_;  // a perf record that wraps around its ring's end, made contiguous
  Batch* current_ = nullptr;
  Queue full_;
  Queue free_;
  std::jthread thread_;
  std::atomic<bool> finished_{false};
  std::atomic<uint64_t> watermark_{0};
  std::atomic<uint64_t> records_{0}, bytes_{0}, stalls_{0}, oversize_{0}, peak_fill_{0};
  bool at_busy_ = false;  // reader thread: a ring of this tick stopped at an uncommitted record
  std::string error_;
  std::atomic<bool> has_error_{false};
  std::string scheduling_;  // owning thread, set by start()
};

}  // namespace clearcap
