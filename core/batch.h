// A batch of raw ring records, handed from a reader thread to the processor.
// Layout of `data`: repeated [uint32 length][uint32 reserved][record bytes,
// padded to 8]. Batches are preallocated by the reader and recycled: the
// per-event path never allocates.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <vector>

namespace clearcap {

class Batch {
 public:
  static constexpr size_t kEntryHeader = 8;

  explicit Batch(size_t capacity) : data_(capacity) {}

  static size_t entry_size(size_t record_len) { return kEntryHeader + ((record_len + 7) & ~size_t{7}); }

  // Reader thread: appends one record; false when it does not fit.
  bool append(const void* record, uint32_t len) {
    size_t need = entry_size(len);
    if (used_ + need > data_.size()) return false;
    std::memcpy(data_.data() + used_, &len, sizeof(len));
    std::memcpy(data_.data() + used_ + kEntryHeader, record, len);
    used_ += need;
    ++records_;
    return true;
  }

  // Processor thread: the record at `offset` and the offset of the next one.
  std::span<const uint8_t> record_at(size_t offset, size_t* next) const {
    uint32_t len;
    std::memcpy(&len, data_.data() + offset, sizeof(len));
    *next = offset + entry_size(len);
    return {data_.data() + offset + kEntryHeader, len};
  }

  void clear() {
    used_ = 0;
    records_ = 0;
    has_wall_offset_ = false;
  }
  // Records replayed from a capture file carry their own clock: wall =
  // boot + this offset for every record of the batch. Live batches have
  // none (the processor converts with the machine's clock).
  void set_wall_offset(int64_t boot_to_wall_ns) {
    boot_to_wall_ns_ = boot_to_wall_ns;
    has_wall_offset_ = true;
  }
  bool has_wall_offset() const { return has_wall_offset_; }
  int64_t wall_offset() const { return boot_to_wall_ns_; }
  bool empty() const { return used_ == 0; }
  size_t used() const { return used_; }
  size_t capacity() const { return data_.size(); }
  uint32_t records() const { return records_; }

 private:
  std::vector<uint8_t> data_;
  size_t used_ = 0;
  uint32_t records_ = 0;
  int64_t boot_to_wall_ns_ = 0;
  bool has_wall_offset_ = false;
};

}  // namespace clearcap
