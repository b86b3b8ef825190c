// Follows the byte offset (seq) of every connection and direction, so that
// lost data shows up as a counted gap even when its cause is not known.
// Thread: one owner (the processor thread).
#pragma once

#include <cstdint>
#include <unordered_map>

#include "core/event.h"

namespace clearcap {

class StreamTracker {
 public:
  enum class Check { kInOrder, kFirst, kGap, kOverlap };

  explicit StreamTracker(size_t max_streams = 65536) : max_streams_(max_streams) {}

  // Records the chunk and tells how it relates to what came before.
  Check observe(const Event& ev);

  uint64_t gaps() const { return gaps_; }
  uint64_t gap_bytes() const { return gap_bytes_; }
  uint64_t overlaps() const { return overlaps_; }
  uint64_t overlap_bytes() const { return overlap_bytes_; }
  uint64_t resets() const { return resets_; }
  size_t streams() const { return next_.size(); }

 private:
  struct Key {
    uint64_t conn_id;
    uint8_t direction;
    bool operator==(const Key&) const = default;
  };
  struct KeyHash {
    size_t operator()(const Key& k) const { return std::hash<uint64_t>()(k.conn_id * 2 + k.direction); }
  };
  size_t max_streams_;
  std::unordered_map<Key, uint64_t, KeyHash> next_;  // next expected seq
  uint64_t gaps_ = 0, gap_bytes_ = 0, overlaps_ = 0, overlap_bytes_ = 0, resets_ = 0;
};

}  // namespace clearcap
