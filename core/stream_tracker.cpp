#include "core/stream_tracker.h"

namespace clearcap {

StreamTracker::Check StreamTracker::observe(const Event& ev) {
  Key key{ev.conn_id, static_cast<uint8_t>(ev.direction)};
  uint64_t end = ev.seq + ev.payload.size();
  auto it = next_.find(key);
  if (it == next_.end()) {
    if (next_.size() >= max_streams_) {
      // Bounded memory: forget everything (closed connections are never
      // announced); later chunks of live streams restart tracking.
      next_.clear();
      ++resets_;
    }
    next_.emplace(key, end);
    // The kernel side starts every connection it sees at seq 0, so a first
    // chunk further on means earlier chunks were lost (unless the table was
    // reset and this stream was merely forgotten).
    if (ev.seq != 0 && resets_ == 0) {
      ++gaps_;
      gap_bytes_ += ev.seq;
      return Check::kGap;
    }
    return Check::kFirst;
  }
  uint64_t expected = it->second;
  if (ev.seq == expected) {
    it->second = end;
    return Check::kInOrder;
  }
  if (ev.seq > expected) {
    ++gaps_;
    gap_bytes_ += ev.seq - expected;
    it->second = end;
    return Check::kGap;
  }
  ++overlaps_;
  overlap_bytes_ += expected - ev.seq;
  if (end > expected) it->second = end;
  return Check::kOverlap;
}

}  // namespace clearcap
