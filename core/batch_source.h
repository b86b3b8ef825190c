// What the processor needs from a producer of batches: the ring readers in
// production, a scripted source in tests and benchmarks.
#pragma once

#include <readerwriterqueue/readerwriterqueue.h>

#include "core/batch.h"

namespace clearcap {

// How much older than "now" a fresh promise (BatchSource::watermark) is at
// best: a ring reader promises up to its tick's start minus the longest a
// BPF program takes between stamping a record and committing it (a 16 KiB
// copy and a ring commit: microseconds; 2 ms of margin).
inline constexpr uint64_t kPromiseLagNs = 2'000'000;

class BatchSource {
 public:
  using Queue = moodycamel::ReaderWriterQueue<Batch*>;
  virtual ~BatchSource() = default;
  // Consumed by the processor thread only.
  virtual Queue& full_queue() = 0;
  // Processor thread: gives an emptied batch back.
  virtual void recycle(Batch* b) = 0;
  // True once the source has handed over its last batch (set after it).
  virtual bool finished() const = 0;
  // Any thread: a boot-time timestamp T such that every record with a
  // timestamp up to T has already been handed over (0 = no promise). Set
  // after the hand-over it covers, so a reader of it that then drains the
  // queue has all those records. Lets the processor release records from
  // busy sources without waiting the merge window for idle ones.
  virtual uint64_t watermark() const { return 0; }
  // Any thread: asks the source for a fresh watermark now rather than at its
  // next timer tick (an idle reader sleeps up to its poll period, while the
  // processor holds a busy reader's records behind the idle one's old
  // promise). The source signals the processor's wake-up when it has set it.
  virtual void kick() {}
};

}  // namespace clearcap
