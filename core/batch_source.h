// What the processor needs from a producer of batches: the ring readers in
// production, a scripted source in tests and benchmarks.
#pragma once

#include <readerwriterqueue/readerwriterqueue.h>

#include "core/batch.h"

namespace clearcap {

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
};

}  // namespace clearcap
