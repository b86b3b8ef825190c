// ByteRing: a bounded single-producer/single-consumer queue of variable-size
// records (encoded events), in one buffer allocated up front. push() never
// blocks and never allocates: when the record does not fit it returns false
// and the caller counts the loss.
//
// Thread: push() from the producer thread only; pop_into()/empty() from the
// consumer thread only; used_bytes() from any thread (approximate).
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>

namespace clearcap {

class ByteRing {
 public:
  // `capacity` is rounded up to a power of two (>= 4 KiB).
  explicit ByteRing(size_t capacity) {
    cap_ = 4096;
    while (cap_ < capacity) cap_ <<= 1;
    // Not zeroed: pages cost memory once the queue first reaches them.
    buf_ = std::make_unique_for_overwrite<char[]>(cap_);
  }

  size_t capacity() const { return cap_; }
  size_t used_bytes() const {
    return static_cast<size_t>(head_.load(std::memory_order_acquire) - tail_.load(std::memory_order_acquire));
  }

  bool push(std::string_view rec) {
    const uint64_t head = head_.load(std::memory_order_relaxed);
    const uint64_t need = sizeof(uint32_t) + rec.size();
    if (rec.size() > UINT32_MAX || need > cap_ - (head - tail_.load(std::memory_order_acquire))) return false;
    const auto len = static_cast<uint32_t>(rec.size());
    copy_in(head, reinterpret_cast<const char*>(&len), sizeof(len));
    copy_in(head + sizeof(len), rec.data(), rec.size());
    head_.store(head + need, std::memory_order_release);
    return true;
  }

  // Appends the oldest record to `out` and removes it; false when empty.
  bool pop_into(std::string& out) {
    const uint64_t tail = tail_.load(std::memory_order_relaxed);
    if (tail == head_.load(std::memory_order_acquire)) return false;
    uint32_t len;
    copy_out(tail, reinterpret_cast<char*>(&len), sizeof(len));
    const size_t start = out.size();
    out.resize(start + len);
    copy_out(tail + sizeof(len), out.data() + start, len);
    tail_.store(tail + sizeof(len) + len, std::memory_order_release);
    return true;
  }

  // Size of the oldest record, or -1 when empty (consumer only).
  int64_t front_size() const {
    const uint64_t tail = tail_.load(std::memory_order_relaxed);
    if (tail == head_.load(std::memory_order_acquire)) return -1;
    uint32_t len;
    copy_out(tail, reinterpret_cast<char*>(&len), sizeof(len));
    return len;
  }

  bool empty() const { return tail_.load(std::memory_order_relaxed) == head_.load(std::memory_order_acquire); }

 private:
  void copy_in(uint64_t pos, const char* p, size_t n) {
    const size_t off = pos & (cap_ - 1);
    const size_t first = std::min(n, cap_ - off);
    std::memcpy(buf_.get() + off, p, first);
    std::memcpy(buf_.get(), p + first, n - first);
  }
  void copy_out(uint64_t pos, char* p, size_t n) const {
    const size_t off = pos & (cap_ - 1);
    const size_t first = std::min(n, cap_ - off);
    std::memcpy(p, buf_.get() + off, first);
    std::memcpy(p + first, buf_.get(), n - first);
  }

  size_t cap_;
  std::unique_ptr<char[]> buf_;
  // Monotonic byte positions; head_ written by the producer, tail_ by the
  // consumer. Separate cache lines: they are written by different threads.
  alignas(64) std::atomic<uint64_t> head_{0};
  alignas(64) std::atomic<uint64_t> tail_{0};
};

}  // namespace clearcap
